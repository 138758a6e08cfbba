/**
 * The simulator's deployment follower: with a coordinator that tells it of changes it reads the
 * deployment when told (and, for a missed event, after a short idle wait), without one it polls; either
 * way it reports waves and decisions and ends at the final phase, and it stops listening when done.
 * The coordinator is scripted through the CoordinatorHandle seam; every wait is for an event.
 */
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { followDeployment } from '../../simulator/deployment-follower.js';
import type { CoordinatorHandle, DeploymentView } from '../../simulator/coordinator-handle.js';
import type { DeviceFleet } from '../../simulator/device-fleet.js';
import type { DecisionView } from '../../simulator/report.js';
import type { SimEvent } from '../../simulator/fleet-runner.js';
import { waitFor } from '../support/wait-for.js';

const counts = { tracked: 3, committed: 0, failed: 0, trialFailures: 0, timedOut: 0, inProgress: 3, offline: 0, ineligible: 0 };

/** A coordinator whose deployment the test moves on, counting the follower's reads. */
function scripted(withWatch: boolean) {
  let view: DeploymentView = { id: 'dep', phase: 'rolling', current: 0, paused: null, waves: [{ index: 0, percent: 100, status: 'rolling', counts }] };
  const decisions: DecisionView[] = [];
  const watchers = new Set<() => void>();
  const s = {
    reads: 0,
    watchers,
    set(next: Partial<DeploymentView>, notify: boolean): void {
      view = { ...view, ...next };
      if (notify) for (const w of watchers) w();
    },
    decide(d: DecisionView): void {
      decisions.push(d);
    },
    handle: {
      deployment: () => {
        s.reads++;
        return Promise.resolve(view);
      },
      decisions: () => Promise.resolve([...decisions]),
      abort: () => Promise.resolve(),
      ...(withWatch
        ? {
            watch: (_id: string, onChange: () => void) => {
              watchers.add(onChange);
              return () => watchers.delete(onChange);
            },
          }
        : {}),
    } as unknown as CoordinatorHandle,
  };
  return s;
}

const fleet = { everyoneOn: () => Promise.resolve(true) } as unknown as DeviceFleet;
const decision: DecisionView = { wave: 0, at: 1, source: 'gate', recommendation: 'Abort', riskLevel: 'Critical', rule: 'hard:install-failures', issues: [], analyzers: [] };

function follow(c: ReturnType<typeof scripted>, events: SimEvent[]): Promise<DeploymentView> {
  return followDeployment({ coordinator: c.handle, id: 'dep', version: '2.0.0', fleet, clock: systemClock, deadlineMs: 3_600_000, emit: (e) => events.push(e), pollMs: 10 });
}

describe('deployment follower', () => {
  it('reads the deployment when the coordinator says it changed, reports it, ends at the final phase and stops listening', async () => {
    const c = scripted(true);
    const events: SimEvent[] = [];
    const done = follow(c, events);
    await waitFor(() => c.reads >= 1 && c.watchers.size === 1, 'first read');
    c.set({ waves: [{ index: 0, percent: 100, status: 'complete', counts: { ...counts, committed: 3, inProgress: 0 } }] }, true);
    await waitFor(() => events.some((e) => e.type === 'wave' && e.status === 'complete'), 'wave reported');
    c.decide(decision);
    c.set({ phase: 'rolled-back' }, true);
    expect((await done).phase).toBe('rolled-back');
    expect(events.filter((e) => e.type === 'decision')).toHaveLength(1);
    expect(c.watchers.size).toBe(0);
  });

  it('notices a change whose event was missed (a coordinator restart) by reading again when idle', async () => {
    const c = scripted(true);
    const done = follow(c, []);
    await waitFor(() => c.reads >= 1, 'first read');
    c.set({ phase: 'aborted' }, false);
    expect((await done).phase).toBe('aborted');
  });

  it('polls a coordinator that offers no change events', async () => {
    const c = scripted(false);
    const done = follow(c, []);
    await waitFor(() => c.reads >= 2, 'polled');
    c.set({ phase: 'completed' }, false);
    expect((await done).phase).toBe('completed');
  });
});
