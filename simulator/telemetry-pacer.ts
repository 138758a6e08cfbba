/**
 * Telemetry pacing: one ticker for the whole fleet instead of one timer per agent. Each device gets a
 * fixed phase within the interval, so messages arrive evenly spread (a broker offered bursts faster
 * than it delivers loses QoS 0 telemetry; BENCHMARKS.md §2 shows the rates), and the number of
 * messages per tick is bounded. I/O shell (a real timer).
 */
import type { Clock } from '@fleet/protocol/clock';

export interface PacedDevice {
  readonly alive: boolean;
  sendTelemetry(): Promise<void>;
}

export class TelemetryPacer {
  private timer: NodeJS.Timeout | null = null;
  private readonly next: number[];
  sent = 0;
  failed = 0;

  /**
   * @param intervalMs simulated telemetry interval
   * @param tickMs real milliseconds between ticks (default 50)
   */
  constructor(
    private readonly devices: readonly PacedDevice[],
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly tickMs = 50,
  ) {
    const start = clock.now();
    // Spread the first messages over one interval, in device order (stable for a seed).
    this.next = devices.map((_, i) => start + ((i + 0.5) / Math.max(1, devices.length)) * intervalMs);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  private tick(): void {
    const now = this.clock.now();
    for (let i = 0; i < this.devices.length; i++) {
      const due = this.next[i]!;
      if (due > now) continue;
      // Skip missed intervals rather than bursting to catch up.
      this.next[i] = due + Math.max(1, Math.ceil((now - due) / this.intervalMs)) * this.intervalMs;
      const d = this.devices[i]!;
      if (!d.alive) continue;
      this.sent++;
      d.sendTelemetry().catch(() => this.failed++);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
