/**
 * Fleet-level fault injection in simulated time: connection drops as a Poisson process over the
 * devices that are up, offline devices returning, and broker or coordinator restarts at set times.
 * Device-level faults (power loss, faulty downloads) live in device-host.ts. I/O shell (clock timers).
 */
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import type { Rng } from './rng.js';

export interface Droppable {
  readonly alive: boolean;
  dropConnection(): void;
}

export class FaultInjector {
  private readonly timers = new Set<TimerHandle>();
  private stopped = false;

  constructor(private readonly clock: Clock, private readonly rng: Rng) {}

  /** Calls `fn` after `ms` of simulated time (once), unless stopped first. */
  at(ms: number, fn: () => void | Promise<void>): void {
    if (this.stopped) return;
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(handle);
      if (this.stopped) return;
      void Promise.resolve(fn()).catch(() => undefined);
    }, ms);
    this.timers.add(handle);
  }

  /** Drops random live connections at `perDeviceH` drops per device-hour. */
  drops(devices: readonly Droppable[], perDeviceH: number): void {
    if (!(perDeviceH > 0) || devices.length === 0) return;
    const ratePerMs = (perDeviceH * devices.length) / 3_600_000;
    const schedule = (): void => {
      const wait = -Math.log(1 - this.rng.next()) / ratePerMs;
      this.at(wait, () => {
        const d = devices[this.rng.int(0, devices.length - 1)]!;
        if (d.alive) d.dropConnection();
        schedule();
      });
    };
    schedule();
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
  }
}
