/**
 * Following one deployment of a simulation to its end: reads the deployment from the coordinator when
 * it changed (its events, where the coordinator offers them; else a real-time poll), emits wave
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
/**
 * With the coordinator's change events, the real time between reads when nothing changed: a missed
 * event (a coordinator restart) and the run's simulated deadline are noticed this late at most.
 */
const IDLE_READ_MS = 500;

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
  /** Real time between reads: the poll interval, or with change events the shortest gap between reads. */
  pollMs: number;
}

/** Change notifications turned into a wait: `next` resolves once a change came since the last call. */
class ChangeSignal {
  private changed = true;
  private wake: (() => void) | null = null;

  readonly notify = (): void => {
    this.changed = true;
    this.wake?.();
  };

  /** Resolves when a change arrived since the last call (at once if one did), or after `maxMs`. */
  async next(maxMs: number): Promise<void> {
    if (!this.changed) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, maxMs);
      });
      clearTimeout(timer);
      this.wake = null;
    }
    this.changed = false;
  }
}

/** Follows the deployment until it is final (or complete with every live device on the version). */
export async function followDeployment(o: FollowOptions): Promise<DeploymentView> {
  const changes = o.coordinator.watch ? new ChangeSignal() : undefined;
  const unwatch = changes ? o.coordinator.watch?.(o.id, changes.notify) : undefined;
  try {
    return await follow(o, changes);
  } finally {
    unwatch?.();
  }
}

async function follow(o: FollowOptions, changes: ChangeSignal | undefined): Promise<DeploymentView> {
  const { coordinator, id, version, clock, emit } = o;
  const start = clock.now();
  const seenWave = new Map<number, string>();
  const seenDecisions = new Set<string>();
  let completedAt: number | null = null;
  let answeredAt = performance.now();
  // A completed deployment waits for its stragglers, whom the fleet reports, not the coordinator.
  let waitingForFleet = false;
  for (;;) {
    await sleepReal(o.pollMs);
    if (changes && !waitingForFleet) await changes.next(Math.max(0, IDLE_READ_MS - o.pollMs));
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
      waitingForFleet = true;
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
