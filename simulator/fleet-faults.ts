/**
 * The scenario's fleet-wide faults, scheduled in simulated time: connection drops, a broker restart,
 * a coordinator restart (real work the clock waits for), offline devices returning. I/O shell.
 */
import { parseDuration } from '@fleet/firmware/duration';
import type { CoordinatorHandle } from './coordinator-handle.js';
import type { DeviceHost } from './device-host.js';
import type { FaultInjector } from './fault-injector.js';
import type { SimEvent } from './fleet-runner.js';
import type { SimClock } from './paced-clock.js';
import type { Scenario } from './scenario.js';
import { boundedEach } from './concurrency.js';

export function scheduleFleetFaults(
  scenario: Scenario,
  hosts: readonly DeviceHost[],
  injector: FaultInjector,
  coordinator: CoordinatorHandle,
  clock: SimClock,
  emit: (e: SimEvent) => void,
  counts: Record<string, number>,
): void {
  const f = scenario.faults;
  injector.drops(hosts, f.dropsPerDeviceH);
  const bump = (k: string): void => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  if (f.brokerRestartAfter !== undefined) {
    injector.at(parseDuration(f.brokerRestartAfter), async () => {
      emit({ type: 'fault', kind: 'broker-restart' });
      bump('broker-restarts');
      try {
        await clock.track(coordinator.restartBroker());
      } catch {
        // The embedded broker cannot restart alone: every device connection drops at once instead,
        // which is what devices see of a broker restart (the reconnect storm), without the lost state.
        for (const h of hosts) h.dropConnection();
      }
    });
  }
  if (f.coordinatorRestartAfter !== undefined) {
    injector.at(parseDuration(f.coordinatorRestartAfter), async () => {
      emit({ type: 'fault', kind: 'coordinator-restart' });
      bump('coordinator-restarts');
      // Stopping and starting a coordinator is real work (SQLite, the broker, replaying statuses): the
      // clock must not let device deadlines run out while it happens.
      await clock.track(coordinator.restartCoordinator());
    });
  }
  const returning = hosts.filter((h) => h.truth.offlineAtStart);
  const returnAt = scenario.fleet.offlineReturnAfter !== undefined ? parseDuration(scenario.fleet.offlineReturnAfter) : null;
  if (returning.length && returnAt !== null) {
    injector.at(returnAt, async () => {
      emit({ type: 'fault', kind: 'offline-devices-return', detail: `${returning.length} devices` });
      counts['offline-returned'] = returning.length;
      await boundedEach(returning.length, 50, (i) => returning[i]!.start());
    });
  }
}
