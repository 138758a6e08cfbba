/**
 * The telemetry collector seam: what the agent measures each interval. Pure types plus a combinator.
 *
 * The daemon uses the Linux collectors (linux-collector.ts, log-excerpt.ts, custom-metrics.ts); the
 * simulator injects behaviour-model collectors. A metric the device cannot measure is left out,
 * never reported as zero.
 */
import type { TelemetryMessage } from '@fleet/protocol/messages';

export type TelemetryMetrics = TelemetryMessage['metrics'];

export interface TelemetrySample {
  metrics: TelemetryMetrics;
  /** Custom numeric metrics (names: letters, digits, . _ -). */
  custom?: Record<string, number>;
  /** New error log lines since the previous sample (the agent bounds and truncates them). */
  logs?: string[];
  /** Events the collector observed since the previous sample (added to the persisted counters). */
  events?: { crashes?: number; errors?: number };
  /** Seconds since boot; the agent uses its own clock when absent. */
  uptimeS?: number;
}

export interface TelemetryCollector {
  collect(): Promise<TelemetrySample>;
}

/** Runs several collectors and merges their samples; one failing collector drops only its part. */
export function combineCollectors(collectors: readonly TelemetryCollector[], onError?: (err: unknown) => void): TelemetryCollector {
  return {
    async collect() {
      const parts = await Promise.allSettled(collectors.map((c) => c.collect()));
      const out: TelemetrySample = { metrics: {} };
      for (const p of parts) {
        if (p.status === 'rejected') {
          onError?.(p.reason);
          continue;
        }
        const s = p.value;
        Object.assign(out.metrics, s.metrics);
        if (s.custom) out.custom = { ...out.custom, ...s.custom };
        if (s.logs?.length) out.logs = [...(out.logs ?? []), ...s.logs];
        if (s.events) {
          out.events = {
            crashes: (out.events?.crashes ?? 0) + (s.events.crashes ?? 0),
            errors: (out.events?.errors ?? 0) + (s.events.errors ?? 0),
          };
        }
        if (s.uptimeS !== undefined) out.uptimeS = s.uptimeS;
      }
      return out;
    },
  };
}
