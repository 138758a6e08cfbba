/**
 * The scenario's fleet-wide faults, scheduled in simulated time: connection drops, a broker restart,
 * a coordinator restart (real work the clock waits for), offline devices returning. I/O shell.
 */
import { parseDuration } from '@fleet/firmware/duration';
import type { CoordinatorHandle } from './coordinator-handle.js';
import type { DeviceFleet } from './device-fleet.js';
import type { FaultInjector } from './fault-injector.js';
import type { SimEvent } from './fleet-runner.js';
import type { SimClock } from './paced-clock.js';
import type { Scenario } from './scenario.js';

/** `offline`: devices offline at the start; `seed`: the connection drops' random stream. */
export async function scheduleFleetFaults(
  scenario: Scenario,
  fleet: DeviceFleet,
  offline: number,
  injector: FaultInjector,
  coordinator: CoordinatorHandle,
  clock: SimClock,
  emit: (e: SimEvent) => void,
  counts: Record<string, number>,
  seed: number,
): Promise<void> {
  const f = scenario.faults;
  if (f.dropsPerDeviceH > 0) await fleet.startDrops(f.dropsPerDeviceH, `${String(scenario.seed)}/drops/${seed}`);
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
        await fleet.dropAll();
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
  const returnAt = scenario.fleet.offlineReturnAfter !== undefined ? parseDuration(scenario.fleet.offlineReturnAfter) : null;
  if (offline > 0 && returnAt !== null) {
    injector.at(returnAt, async () => {
      emit({ type: 'fault', kind: 'offline-devices-return', detail: `${offline} devices` });
      // The fleet counts them (offline-returned).
      await fleet.startReturning(50);
    });
  }
}
