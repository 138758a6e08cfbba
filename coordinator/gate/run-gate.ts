/**
 * Runs a wave gate: every analyzer on the same snapshot, concurrently, each bounded by a timeout; a
 * throw or timeout becomes an error record. Combines them (combine.ts) into a DecisionRecord with the
 * snapshot's digest. Shell-side helper: the clocks are injected, nothing else is touched.
 *
 * Two clocks: the decision is stamped in the rollout's time (`clock`, simulated in the simulator), but an
 * analyzer's call is bounded and timed in wall time (`deadlineClock`): an AI answer takes real seconds
 * however fast simulated time runs, and a 60 s limit on a clock running 100× would turn a slow but good
 * answer into a timeout — a verdict that changes with the machine's load.
 */
import { createHash } from 'node:crypto';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import { systemClock, type Clock } from '@fleet/protocol/clock';
import { canonicalize } from '@fleet/firmware/canonical-json';
import type { AnalyzerOutcome, GateAnalyzer, GatePolicy } from './analyzer.js';
import { combineOutcomes, defaultRole, type NamedOutcome } from './combine.js';
import type { DecisionRecord, DecisionSource } from './decision.js';

/** Default per-analyzer time limit: 60 s (an AI call may be slow; it must never hold a wave forever). */
export const DEFAULT_ANALYZER_TIMEOUT_MS = 60_000;

/** sha256 (hex) of the canonical JSON of a value: the decision's inputs digest. */
export function inputsDigest(value: unknown): string {
  return createHash('sha256').update(canonicalize(value), 'utf8').digest('hex');
}

export interface RunGateOptions {
  snapshot: CanarySnapshot;
  /** The snapshot's inputs digest when the caller already took it (to store the snapshot under it). */
  inputsDigest?: string;
  analyzers: readonly GateAnalyzer[];
  policy: GatePolicy;
  clock: Clock;
  /** Decision id (from the shell's id source). */
  id: string;
  attempt: number;
  source?: DecisionSource;
  timeoutMs?: number;
  /** Bounds and times each analyzer's call; default wall time (tests pass their manual clock). */
  deadlineClock?: Clock;
}

async function runOne(a: GateAnalyzer, o: RunGateOptions): Promise<NamedOutcome> {
  const role = defaultRole(a.name, a.role);
  const deadlines = o.deadlineClock ?? systemClock;
  const started = deadlines.now();
  const controller = new AbortController();
  const timeoutMs = o.timeoutMs ?? DEFAULT_ANALYZER_TIMEOUT_MS;
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  const timeout = new Promise<AnalyzerOutcome>((resolve) => {
    timer = deadlines.setTimeout(() => {
      controller.abort();
      resolve({ ok: false, error: { code: 'timeout', message: `no answer within ${timeoutMs} ms` }, latencyMs: timeoutMs });
    }, timeoutMs);
  });
  try {
    const outcome = await Promise.race([
      a.analyze(o.snapshot, { policy: o.policy, now: o.clock.now(), signal: controller.signal }),
      timeout,
    ]);
    // Latency as measured here (wall time), whatever the analyzer reports of itself.
    return { name: a.name, role, outcome: { ...outcome, latencyMs: Math.max(0, deadlines.now() - started) } };
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    return {
      name: a.name,
      role,
      outcome: {
        ok: false,
        error: { code: typeof e.code === 'string' ? e.code : 'analyzer-error', message: String(e.message ?? err) },
        latencyMs: Math.max(0, deadlines.now() - started),
      },
    };
  } finally {
    if (timer) deadlines.clearTimeout(timer);
  }
}

/** Runs the analyzers and returns the decision record (never throws for an analyzer's failure). */
export async function runGate(o: RunGateOptions): Promise<DecisionRecord> {
  const outcomes = await Promise.all(o.analyzers.map((a) => runOne(a, o)));
  // Hard analyzers first so that on a tie the hard rule is the one named.
  const ordered = [...outcomes].sort((x, y) => Number(y.role === 'hard') - Number(x.role === 'hard'));
  const { records, final } = combineOutcomes(ordered, o.policy);
  return {
    id: o.id,
    deploymentId: o.snapshot.deploymentId,
    wave: o.snapshot.wave,
    attempt: o.attempt,
    at: o.clock.now(),
    source: o.source ?? 'gate',
    inputsDigest: o.inputsDigest ?? inputsDigest(o.snapshot),
    policy: { ...o.policy },
    analyzers: records,
    final,
  };
}
