/** The gate snapshot the coordinator assembles from engine state, the registry and telemetry (SQLite in memory). */
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import type { Db } from '../../coordinator/store/db.js';
import { DeviceRegistry } from '../../coordinator/registry/device-registry.js';
import { SnapshotBuilder } from '../../coordinator/telemetry/snapshot-builder.js';
import { openTelemetrySqlite } from '../../coordinator/telemetry/telemetry-schema.js';
import { GateSnapshots } from '../../coordinator/deployments/gate-snapshots.js';
import { allDevices } from '../../coordinator/engine/device-progress.js';
import { countSnapshot, hardGateVerdict } from '../../coordinator/gate/hard-gates.js';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { hello, HOUR, MIN, T0 } from './engine-fixtures.js';
import { rolling, W0, type Drive } from './engine-phases.js';
import { TelemetryStore } from '../../coordinator/telemetry/telemetry-store.js';
import type { TelemetryMessage } from '../../protocol/messages.js';
import { definedProps } from '../../firmware/defined-props.js';

const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) closeDatabase(db);
});

async function snapshots(warmUpMs?: number): Promise<{ gate: GateSnapshots; registry: DeviceRegistry; telemetry: TelemetryStore }> {
  const db = openDatabase(':memory:');
  const tdb = openTelemetrySqlite(':memory:');
  dbs.push(db, tdb.db);
  const registry = await DeviceRegistry.load(new SqliteSql(db));
  const gate = new GateSnapshots({ registry, builder: new SnapshotBuilder(tdb, MIN), silentAfterMs: 15 * MIN, ...definedProps({ warmUpMs }) });
  const telemetry = new TelemetryStore(tdb, { rollupSlotMs: MIN, rawRetentionMs: 48 * HOUR, maxExposureGapMs: 5 * MIN });
  return { gate, registry, telemetry };
}

function cpu(deviceId: string, seq: number, at: number, cpuPct: number): TelemetryMessage {
  return {
    v: 1, kind: 'telemetry', deviceId, firmwareVersion: '2.0.0', slot: 'B', uptimeS: seq * 60, bootCount: 2,
    metrics: { cpuPct }, counters: { crashes: 0, agentRestarts: 0, errors: 0, reboots: 0 }, custom: {}, logs: [], seq, at,
  };
}

async function take(gate: GateSnapshots, d: Drive, now: number) {
  const snapshot = await gate.build(d.state, 0, now, allDevices(d.state));
  return { snapshot, counts: countSnapshot(snapshot), verdict: hardGateVerdict(countSnapshot(snapshot), DEFAULT_GATE_POLICY) };
}

describe('gate snapshots: members that never reported', () => {
  it('a wave whose members never report holds at Monitor on sufficiency, not Proceed with no evidence', async () => {
    const { gate, registry } = await snapshots();
    const d = rolling();
    for (const id of W0(d.spec)) registry.applyHello(hello(id, '1.0.0'), T0);
    const { snapshot, counts, verdict } = await take(gate, d, T0 + 40 * MIN);
    const canary = snapshot.devices.filter((x) => x.cohort === 'canary');
    expect(canary.map((x) => x.deviceId).sort()).toEqual([...W0(d.spec)].sort());
    for (const x of canary) {
      expect(x.update).toBeUndefined(); // no report: no update state
      expect(x.silent).toBe(false); // not yet past the deadline
    }
    expect(counts).toMatchObject({ canary: 3, reporting: 0, installFailures: 0 });
    expect(verdict.recommendation).toBe('Monitor');
    expect(verdict.rule).toBe('sufficiency:min-reporting-devices');
  });

  it('one report out of three still holds; a member past its deadline counts as silent', async () => {
    const { gate, registry } = await snapshots();
    const d = rolling();
    const ids = W0(d.spec);
    d.at(T0 + 2 * MIN).statuses(ids.slice(0, 1), 'committed');
    registry.applyHello(hello(ids[0]!, '2.0.0'), T0 + 39 * MIN); // heard from recently: not silent
    const early = await take(gate, d, T0 + 40 * MIN);
    expect(early.counts).toMatchObject({ canary: 3, reporting: 1 });
    expect(early.verdict.recommendation).toBe('Monitor');
    expect(early.snapshot.devices.find((x) => x.deviceId === ids[0])!.update).toEqual({ state: 'committed' });

    // Past the wave's deadline the engine marks the quiet members timed out: silent, i.e. failures.
    d.at(T0 + 2 * HOUR).ev({ type: 'tick' });
    const quiet = allDevices(d.state).filter((x) => x.timedOut);
    expect(quiet.map((x) => x.deviceId).sort()).toEqual(ids.slice(1).sort());
    registry.seen(ids[0]!, T0 + 2 * HOUR - MIN);
    const late = await take(gate, d, T0 + 2 * HOUR);
    for (const id of ids.slice(1)) {
      const x = late.snapshot.devices.find((y) => y.deviceId === id)!;
      expect(x).toMatchObject({ cohort: 'canary', silent: true });
      expect(x.update).toBeUndefined();
    }
    expect(late.counts).toMatchObject({ canary: 3, reporting: 1, silentCanary: 2 });
  });
});

describe('gate snapshots: warm-up after the commit', () => {
  it.each([
    [undefined, 25, 20], // default 5 minutes: minutes 15..39 after the commit at minute 10
    [0, 30, 95], // no warm-up: the boot spike is the p99
  ])('warm-up %s ms: the CPU summary has %i samples, p99 %i', async (warmUpMs, n, p99) => {
    const { gate, registry, telemetry } = await snapshots(warmUpMs);
    const d = rolling();
    const [id] = W0(d.spec);
    d.at(T0 + 2 * MIN).statuses([id!], 'downloading');
    d.at(T0 + 10 * MIN).statuses([id!], 'committed');
    // One sample a minute from the commit on; the first 3 minutes after the reboot at 95 % CPU.
    for (let i = 0; i < 30; i++) await telemetry.ingest(cpu(id!, i, T0 + (10 + i) * MIN, i < 3 ? 95 : 20), T0 + (10 + i) * MIN);
    await telemetry.flush();
    registry.applyHello(hello(id!, '2.0.0'), T0 + 39 * MIN);
    const x = (await take(gate, d, T0 + 40 * MIN)).snapshot.devices.find((y) => y.deviceId === id)!;
    expect(x.metrics.cpuPct).toMatchObject({ n, p99 });
    expect(x.samples).toBe(30); // exposure and counters are not warmed up
  });
});
