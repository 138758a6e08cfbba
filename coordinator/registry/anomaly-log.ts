/**
 * Per-device anomalies: what a device did that the coordinator refused or shed — a hello claiming
 * another hardware model, a status for a deployment or wave it was never offered, messages past its
 * rate, an oversized packet, failed logins throttled under its id, a connect without credentials as a
 * provisioned id. One record per (device, kind) with a count, first and last time and the latest
 * detail, so a device repeating itself a million times is still one row. Records are kept for devices
 * the registry knows; for any other id (an attacker can invent unlimited ids) the anomaly is counted
 * in metrics and logged, never stored. Every anomaly is counted (`anomalies.<kind>`) and logged with
 * the device id, at most one line per device and kind per interval. Kept in memory, written to the
 * store in batches (`flush`, inside housekeeping's transaction). I/O shell (the store).
 */
import { z } from 'zod';
import type { Logger } from 'pino';
import { DeviceIdSchema } from '@fleet/protocol/ids';
import type { Sql, SqlQueries } from '../store/sql.js';
import type { Counters } from '../metrics.js';
import { LogLimiter } from '../log-limiter.js';

const MAX_DETAIL = 300;

export const ANOMALY_KINDS = ['wrong-model', 'unoffered-status', 'rate-limited', 'oversized-packet', 'login-throttled', 'spoofed-identity'] as const;
export const AnomalyKindSchema = z.enum(ANOMALY_KINDS);
export type AnomalyKind = z.infer<typeof AnomalyKindSchema>;

/** One device's anomalies of one kind, as the admin API shows them. */
export const DeviceAnomalySchema = z.object({
  deviceId: DeviceIdSchema,
  kind: AnomalyKindSchema,
  count: z.number().int().positive(),
  firstAt: z.number().int(),
  lastAt: z.number().int(),
  /** The latest occurrence, in words (bounded). */
  detail: z.string().max(MAX_DETAIL),
});
export type DeviceAnomaly = z.infer<typeof DeviceAnomalySchema>;

export interface AnomalyLogDeps {
  sql: Sql;
  now: () => number;
  counters: Counters;
  logger: Logger;
  /** Whether the registry knows the device (only known devices get a stored record). */
  isKnown: (deviceId: string) => boolean;
  /** At most one log line per device and kind per this long (clock time). Default 10 s. */
  logIntervalMs?: number;
}

export interface AnomalyFilter {
  deviceId?: string;
  kind?: AnomalyKind;
  /** Default 500. */
  limit?: number;
}

const UPSERT = `INSERT INTO device_anomalies (device_id, kind, count, first_at, last_at, detail) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (device_id, kind) DO UPDATE SET count = excluded.count, last_at = excluded.last_at, detail = excluded.detail`;

const key = (deviceId: string, kind: AnomalyKind): string => `${kind}\u0000${deviceId}`;

/** Control characters out, length bounded: details may quote what a device sent. */
function cleanDetail(detail: string): string {
  // eslint-disable-next-line no-control-regex
  const text = detail.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL - 1)}…` : text;
}

export class AnomalyLog {
  private readonly records = new Map<string, DeviceAnomaly>();
  private readonly dirty = new Set<string>();
  private readonly logLimit: LogLimiter;
  private lastFlushed: string[] = [];

  private constructor(private readonly deps: AnomalyLogDeps) {
    this.logLimit = new LogLimiter(deps.logIntervalMs ?? 10_000, deps.now);
  }

  /** Loads every stored record. */
  static async load(deps: AnomalyLogDeps): Promise<AnomalyLog> {
    const log = new AnomalyLog(deps);
    const rows = await deps.sql.all<{
      device_id: string;
      kind: string;
      count: number;
      first_at: number;
      last_at: number;
      detail: string;
    }>('SELECT device_id, kind, count, first_at, last_at, detail FROM device_anomalies');
    for (const r of rows) {
      const parsed = DeviceAnomalySchema.safeParse({ deviceId: r.device_id, kind: r.kind, count: r.count, firstAt: r.first_at, lastAt: r.last_at, detail: r.detail });
      if (parsed.success) log.records.set(key(parsed.data.deviceId, parsed.data.kind), parsed.data);
    }
    return log;
  }

  /** Records `count` occurrences of an anomaly of `deviceId` (counted, logged at a bounded rate, stored if known). */
  record(deviceId: string, kind: AnomalyKind, detail: string, count = 1): void {
    const { counters, logger, now } = this.deps;
    counters.inc(`anomalies.${kind}`, count);
    const at = now();
    const k = key(deviceId, kind);
    let rec = this.records.get(k);
    if (rec) {
      rec.count += count;
      rec.lastAt = at;
      rec.detail = cleanDetail(detail);
      this.dirty.add(k);
    } else if (this.deps.isKnown(deviceId)) {
      rec = { deviceId, kind, count, firstAt: at, lastAt: at, detail: cleanDetail(detail) };
      this.records.set(k, rec);
      this.dirty.add(k);
    }
    // Known devices: a line per device and kind; unknown ids (unbounded): a line per kind.
    const held = this.logLimit.admit(rec ? k : `unknown\u0000${kind}`);
    if (held !== undefined) {
      logger.warn({ deviceId, anomaly: kind, detail: cleanDetail(detail), total: rec?.count ?? null, sinceLastLine: held + 1, known: rec !== undefined }, 'device anomaly');
    }
  }

  forDevice(deviceId: string): DeviceAnomaly[] {
    return this.list({ deviceId });
  }

  /** Records, most recent first. */
  list(filter: AnomalyFilter = {}): DeviceAnomaly[] {
    const out: DeviceAnomaly[] = [];
    for (const r of this.records.values()) {
      if (filter.deviceId !== undefined && r.deviceId !== filter.deviceId) continue;
      if (filter.kind !== undefined && r.kind !== filter.kind) continue;
      out.push({ ...r });
    }
    out.sort((a, b) => b.lastAt - a.lastAt || (a.deviceId < b.deviceId ? -1 : 1));
    return out.slice(0, filter.limit ?? 500);
  }

  /** Devices with at least one record. */
  get devices(): number {
    return new Set([...this.records.values()].map((r) => r.deviceId)).size;
  }

  /**
   * Writes changed records (one statement each) with `tx`, housekeeping's transaction. On failure the
   * records stay due for the next flush. Each row carries the whole count, so a retry never adds twice.
   */
  async flush(tx: SqlQueries): Promise<void> {
    const due = [...this.dirty];
    this.dirty.clear();
    this.lastFlushed = due;
    try {
      for (const k of due) {
        const r = this.records.get(k);
        if (r) await tx.run(UPSERT, [r.deviceId, r.kind, r.count, r.firstAt, r.lastAt, r.detail]);
      }
    } catch (err) {
      this.flushRolledBack();
      throw err;
    }
  }

  /** The transaction of the last flush was rolled back: what it wrote is due again. */
  flushRolledBack(): void {
    for (const k of this.lastFlushed) this.dirty.add(k);
    this.lastFlushed = [];
  }
}
