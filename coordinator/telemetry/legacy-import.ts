/**
 * Moves telemetry that older coordinators kept inside fleet.db (store migration 3: telemetry_raw,
 * telemetry_rollup, device_counters) into telemetry.db, once, before fleet.db's migration 9 drops
 * those tables: a coordinator upgraded mid-rollout keeps the history its gates compare. Runs at
 * start-up, before the telemetry thread opens the database. I/O shell (SQLite).
 */
import { existsSync } from 'node:fs';
import type { Db } from '../store/db.js';
import { SampleChunk } from './sample-chunks.js';
import { packSums } from './rollup-math.js';
import { sumsFromJson } from './telemetry-schema.js';
import type { RollupRow } from './telemetry-store.js';

const PAGE = 10_000;

interface LegacyRaw {
  rowid: number;
  device_id: string;
  at: number;
  firmware_version: string;
  cpu: number | null;
  mem: number | null;
  temp: number | null;
  battery: number | null;
  power: number | null;
  boot_time: number | null;
}

/** A rollup row as fleet.db kept it: the same columns, metric sums as JSON. */
interface LegacyRollup extends Omit<RollupRow, 'metrics'> {
  rowid: number;
  metrics_json: string;
}

/**
 * Copies legacy telemetry from `fleetDbPath` into `telemetryDb` when telemetry.db is still empty and
 * fleet.db still has the old tables. Returns the rows copied per table (all zero when there was
 * nothing to move). One transaction: a crash leaves telemetry.db empty and the copy is redone.
 */
export function importLegacyTelemetry(telemetryDb: Db, fleetDbPath: string): { rollups: number; samples: number; counters: number } {
  const none = { rollups: 0, samples: 0, counters: 0 };
  if (!existsSync(fleetDbPath)) return none;
  const has = (sql: string): boolean => telemetryDb.prepare(sql).get() !== undefined;
  if (has('SELECT 1 FROM telemetry_rollup LIMIT 1') || has('SELECT 1 FROM device_counters LIMIT 1')) return none;
  telemetryDb.prepare('ATTACH DATABASE ? AS legacy').run(fleetDbPath);
  try {
    if (!has("SELECT 1 FROM legacy.sqlite_master WHERE type = 'table' AND name = 'telemetry_rollup'")) return none;
    return telemetryDb.transaction(() => {
      // Rollups copied in pages: their metric sums were JSON in fleet.db and are packed here.
      const rollupPage = telemetryDb.prepare('SELECT rowid, * FROM legacy.telemetry_rollup WHERE rowid > ? ORDER BY rowid LIMIT ?');
      const putRollup = telemetryDb.prepare(`INSERT INTO telemetry_rollup (device_id, slot_start, firmware_version, samples, first_at, last_at,
        exposure_ms, crashes, errors, reboots, agent_restarts, metrics, error_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
      let rollups = 0;
      for (let after = 0; ; ) {
        const rows = rollupPage.all(after, PAGE) as LegacyRollup[];
        if (rows.length === 0) break;
        for (const r of rows) {
          putRollup.run(r.device_id, r.slot_start, r.firmware_version, r.samples, r.first_at, r.last_at, r.exposure_ms,
            r.crashes, r.errors, r.reboots, r.agent_restarts, packSums(sumsFromJson(r.metrics_json)), r.error_lines);
        }
        rollups += rows.length;
        after = rows[rows.length - 1]!.rowid;
      }
      // The old counters row had no version: it was the device's latest rollup's ('' when none, which re-baselines).
      const counters = telemetryDb.prepare(`INSERT INTO device_counters (device_id, at, seq, firmware_version, crashes, errors, reboots, agent_restarts)
        SELECT c.device_id, c.at, c.seq, COALESCE((SELECT r.firmware_version FROM legacy.telemetry_rollup r WHERE r.device_id = c.device_id
          ORDER BY r.slot_start DESC, r.last_at DESC LIMIT 1), ''), c.crashes, c.errors, c.reboots, c.agent_restarts
        FROM legacy.device_counters c`).run().changes;
      const page = telemetryDb.prepare('SELECT rowid, * FROM legacy.telemetry_raw WHERE rowid > ? ORDER BY rowid LIMIT ?');
      const put = telemetryDb.prepare('INSERT INTO telemetry_samples (device_id, firmware_version, first_at, last_at, n, data) VALUES (?, ?, ?, ?, 1, ?)');
      let samples = 0;
      for (let after = 0; ; ) {
        const rows = page.all(after, PAGE) as LegacyRaw[];
        if (rows.length === 0) break;
        for (const r of rows) {
          const chunk = new SampleChunk(r.device_id, r.firmware_version);
          chunk.add(r.at, {
            cpuPct: r.cpu ?? undefined,
            memUsedMb: r.mem ?? undefined,
            temperatureC: r.temp ?? undefined,
            batteryPct: r.battery ?? undefined,
            powerW: r.power ?? undefined,
            bootTimeS: r.boot_time ?? undefined,
          });
          put.run(r.device_id, r.firmware_version, r.at, r.at, chunk.pack());
        }
        samples += rows.length;
        after = rows[rows.length - 1]!.rowid;
      }
      return { rollups, samples, counters };
    })();
  } finally {
    telemetryDb.exec('DETACH DATABASE legacy');
  }
}
