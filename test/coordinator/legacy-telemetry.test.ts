/**
 * Upgrading a data directory whose fleet.db still holds telemetry (store migrations before 9): the
 * coordinator moves rollups, counters and raw samples into telemetry.db once, fleet.db drops the old
 * tables, and the gates read the moved history as before.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { ALL_MIGRATIONS } from '../../coordinator/store/migration-list.js';
import { SnapshotBuilder } from '../../coordinator/telemetry/snapshot-builder.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import type { Coordinator } from '../../coordinator/index.js';
import { readDatabase, startCoordinator, tempDir } from './helpers.js';

const T0 = 1_800_000_000_000;
let c: Coordinator | undefined;
let cleanup: (() => void) | undefined;
afterEach(async () => {
  await c?.stop();
  c = undefined;
  cleanup?.();
});

function legacyDataDir(): string {
  const t = tempDir('fleet-legacy-');
  cleanup = t.cleanup;
  const db = openDatabase(join(t.dir, 'fleet.db'), { migrations: ALL_MIGRATIONS.filter((m) => m.version < 9) });
  const sums = (y: number) => ({ n: 3, sum: 3 * y, sumsq: 3 * y * y, max: y, st: 0, stt: 0, sty: 0 });
  db.prepare(`INSERT INTO telemetry_rollup (device_id, slot_start, firmware_version, samples, first_at, last_at, exposure_ms, crashes, errors,
    reboots, agent_restarts, metrics_json, error_lines) VALUES ('old-1', ?, '2.0.0', 3, ?, ?, 120000, 1, 2, 0, 0, ?, '["boom at 0x1f"]')`)
    .run(T0, T0, T0 + 120_000, JSON.stringify({ cpuPct: sums(20) }));
  db.prepare(`INSERT INTO device_counters (device_id, at, seq, crashes, errors, reboots, agent_restarts) VALUES ('old-1', ?, 3, 4, 5, 0, 0)`).run(T0 + 120_000);
  const raw = db.prepare(`INSERT INTO telemetry_raw (device_id, at, firmware_version, cpu, mem, temp, battery, power, boot_time)
    VALUES ('old-1', ?, '2.0.0', ?, NULL, NULL, NULL, NULL, NULL)`);
  for (let i = 0; i < 3; i++) raw.run(T0 + i * 60_000, 10 + 10 * i);
  closeDatabase(db);
  return t.dir;
}

describe('telemetry kept in fleet.db by an older coordinator', () => {
  it('moves to telemetry.db once, and the gates read it as before', async () => {
    const dir = legacyDataDir();
    c = await startCoordinator(dir);
    const telemetryDb = readDatabase(dir, 'telemetry');
    const tables = readDatabase(dir, 'fleet').prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('telemetry_raw', 'telemetry_rollup', 'device_counters')").all();
    expect(tables).toEqual([]);
    expect(telemetryDb.prepare('SELECT device_id, at, seq, firmware_version, crashes FROM device_counters').all()).toEqual([
      { device_id: 'old-1', at: T0 + 120_000, seq: 3, firmware_version: '2.0.0', crashes: 4 },
    ]);
    const summary = (await new SnapshotBuilder(new SqliteSql(telemetryDb), 60_000).summarizeDevice('old-1', '2.0.0', T0, T0 + 180_000)).summary;
    expect(summary.samples).toBe(3);
    expect(summary.events).toEqual({ crashes: 1, errors: 2, reboots: 0, agentRestarts: 0 });
    expect(summary.errorSignatures).toEqual(['boom at <hex>']);
    // p99 comes from the moved raw samples (10, 20, 30), not the rollup's max.
    expect(summary.metrics.cpuPct).toMatchObject({ n: 3, mean: 20, p99: 30 });

    // A second start moves nothing again.
    await c.stop();
    c = await startCoordinator(dir);
    const again = readDatabase(dir, 'telemetry');
    expect(again.prepare('SELECT COUNT(*) AS n FROM telemetry_rollup').get()).toEqual({ n: 1 });
    expect(again.prepare('SELECT SUM(n) AS n FROM telemetry_samples').get()).toEqual({ n: 3 });
  });
});
