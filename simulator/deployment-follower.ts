/**
 * Following one deployment of a simulation to its end: polls the coordinator (real time), emits wave
 * progress and gate decisions, and ends a rollout that is held for an operator (or out of its
 * simulated time) by aborting it as an operator would — nobody comes in a simulation. I/O shell.
 */
import type { Clock } from '@fleet/protocol/clock';
import type { CoordinatorHandle, DeploymentView } from './coordinator-handle.js';
import type { DeviceFleet } from './device-fleet.js';
import type { SimEvent } from './fleet-runner.js';
import { SimulationError } from './errors.js';

const FINAL = new Set(['aborted', 'rolled-back']);
/** Real time the coordinator may stay unreachable (a restart) before the run gives up on it. */
const UNREACHABLE_LIMIT_MS = 5 * 60_000;
/** Simulated grace after the last wave for stragglers (reconnecting, slow links). */
const STRAGGLER_GRACE_MS = 30 * 60_000;

export const sleepReal = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface FollowOptions {
  coordinator: CoordinatorHandle;
  id: string;
  version: string;
  fleet: DeviceFleet;
  clock: Clock;
  /** Simulated time the release may take. */
  deadlineMs: number;
  emit: (e: SimEvent) => void;
  /** Real-time poll interval. */
  pollMs: number;
}

/** Polls the deployment until it is final (or complete with every live device on the version). */
export async function followDeployment(o: FollowOptions): Promise<DeploymentView> {
  const { coordinator, id, version, clock, emit } = o;
  const start = clock.now();
  const seenWave = new Map<number, string>();
  const seenDecisions = new Set<string>();
  let completedAt: number | null = null;
  let answeredAt = performance.now();
  for (;;) {
    await sleepReal(o.pollMs);
    let d: DeploymentView;
    try {
      d = await coordinator.deployment(id);
      answeredAt = performance.now();
    } catch (err) {
      // A restarting coordinator does not answer for a moment; one that never answers ends the run.
      if (performance.now() - answeredAt > UNREACHABLE_LIMIT_MS) {
        throw new SimulationError('coordinator-unreachable', `the coordinator has not answered for ${UNREACHABLE_LIMIT_MS / 60_000} minutes (${(err as Error).message}); the simulation stops`);
      }
      continue;
    }
    for (const w of d.waves) {
      const key = `${w.status}/${w.counts.committed}/${w.counts.failed}`;
      if (seenWave.get(w.index) !== key && w.status !== 'pending') {
        seenWave.set(w.index, key);
        emit({ type: 'wave', version, wave: w.index, percent: w.percent, status: w.status, targeted: w.counts.tracked, committed: w.counts.committed, failed: w.counts.failed });
      }
    }
    try {
      for (const dec of await coordinator.decisions(id)) {
        const key = `${dec.wave}/${dec.at}/${dec.source}`;
        if (seenDecisions.has(key)) continue;
        seenDecisions.add(key);
        emit({ type: 'decision', version, decision: dec });
      }
    } catch {
      // restarting
    }
    if (FINAL.has(d.phase)) return d;
    const overdue = clock.now() - start > o.deadlineMs;
    const stuck = d.paused ? `paused (${d.paused.cause}) in ${d.phase}` : overdue && d.phase !== 'completed' ? `deadline passed in ${d.phase}` : null;
    if (stuck !== null) {
      await coordinator.abort(id, `simulation: ${stuck}; no operator to decide`).catch(() => undefined);
      await settleFinal(coordinator, id, clock, STRAGGLER_GRACE_MS);
      return { ...d, phase: stuck };
    }
    if (d.phase === 'completed') {
      completedAt ??= clock.now();
      const everyone = await o.fleet.everyoneOn(version);
      if (everyone || clock.now() - completedAt > STRAGGLER_GRACE_MS) return d;
    }
    if (overdue) return d;
  }
}

/** Waits (bounded, in simulated time) for an aborted deployment to reach a final phase. */
async function settleFinal(coordinator: CoordinatorHandle, id: string, clock: Clock, maxMs: number): Promise<void> {
  const end = clock.now() + maxMs;
  while (clock.now() < end) {
    const d = await coordinator.deployment(id).catch(() => null);
    if (d && FINAL.has(d.phase)) return;
    await sleepReal(100);
  }
}
