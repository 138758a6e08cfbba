/**
 * The registry belongs to the operator (SQLite and PostgreSQL): the provisioned model is authoritative, ghosts
 * never match a target, anomalies are counted, stored for known devices only and survive a restart;
 * anonymous devices are an explicit, loopback-only opt-in.
 */
import { describe, expect, it } from 'vitest';
import { DeviceRegistry, matchesTarget } from '../../coordinator/registry/device-registry.js';
import { AnomalyLog } from '../../coordinator/registry/anomaly-log.js';
import { Counters } from '../../coordinator/metrics.js';
import { isLoopbackHost, loadConfig } from '../../coordinator/config.js';
import { bucketOf } from '../../protocol/bucket.js';
import type { HelloMessage } from '../../protocol/messages.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';
import { silentLogger } from './helpers.js';

const T = Date.UTC(2026, 0, 5);
const hello = (deviceId: string, hardwareModel: string, firmwareVersion = '1.0.0'): HelloMessage => ({
  v: 1, kind: 'hello', deviceId, hardwareModel, firmwareVersion, activeSlot: 'A', agentVersion: 't', bucket: bucketOf(deviceId), tags: [], securityFloor: 0, at: T,
});

describe.each(STORE_KINDS)('registry on %s: the operator decides', (kind) => {
  it('refuses a hello claiming another model than the provisioned one, and never changes the model', async () => {
    const reg = await DeviceRegistry.load(await openTestStore(kind), { requireProvisioning: true });
    await reg.provisioned('pi-1', T, { hardwareModel: 'rpi4' });
    expect(reg.checkHello(hello('pi-1', 'rpi4'))).toBeUndefined();
    expect(reg.checkHello(hello('pi-1', 'cm4'))).toEqual({ kind: 'wrong-model', detail: 'said hello as cm4; registered as rpi4' });
    // Even applied directly, a hello never changes a known model.
    reg.applyHello(hello('pi-1', 'cm4', '9.9.9'), T + 1);
    expect(reg.hardwareModelOf('pi-1')).toBe('rpi4');
    // Provisioned without a model: the first hello's model sticks.
    await reg.provisioned('pi-2', T);
    reg.applyHello(hello('pi-2', 'rpi4'), T + 1);
    expect(reg.checkHello(hello('pi-2', 'cm4'))?.detail).toBe('said hello as cm4; registered as rpi4');
    // The operator may re-provision with another model.
    await reg.provisioned('pi-2', T + 2, { hardwareModel: 'cm4' });
    expect(reg.checkHello(hello('pi-2', 'cm4'))).toBeUndefined();
    await reg.idle();
  });

  it('a device never provisioned is a ghost where provisioning is required: never in a target, until provisioned', async () => {
    const store = await openTestStore(kind);
    const reg = await DeviceRegistry.load(store, { requireProvisioning: true });
    const target = { hardware: ['rpi4'] };
    const ghost = reg.applyHello(hello('ghost-1', 'rpi4'), T);
    expect(ghost.ghost).toBe(true);
    expect(matchesTarget(ghost, target)).toBe(false);
    expect(reg.matching(target)).toEqual([]);
    expect(reg.isTracked('ghost-1')).toBe(false);
    await reg.idle();
    // After a restart it is still a ghost; once provisioned it is not.
    const again = await DeviceRegistry.load(store, { requireProvisioning: true });
    expect(again.get('ghost-1')?.ghost).toBe(true);
    await again.provisioned('ghost-1', T + 1);
    expect(again.isTracked('ghost-1')).toBe(true);
    expect(again.matching(target).map((d) => d.deviceId)).toEqual(['ghost-1']);
    // Where the broker is someone else's (external), devices known by hello take part.
    expect((await DeviceRegistry.load(store)).get('ghost-1')?.ghost).toBe(false);
  });
});

describe.each(STORE_KINDS)('anomaly log on %s', (kind) => {
  it('aggregates per device and kind, counts every one, stores known devices only, survives a restart', async () => {
    const sql = await openTestStore(kind);
    let now = T;
    const counters = new Counters();
    const known = new Set(['pi-1']);
    const log = await AnomalyLog.load({ sql, now: () => now, counters, logger: silentLogger, isKnown: (id) => known.has(id) });
    log.record('pi-1', 'wrong-model', 'said hello as cm4; provisioned as rpi4');
    now += 1000;
    log.record('pi-1', 'wrong-model', 'said hello as cm5\u0000; provisioned as rpi4');
    log.record('pi-1', 'rate-limited', 'x'.repeat(1000), 5);
    log.record('invented-1', 'login-throttled', 'nobody');
    expect(counters.snapshot()).toMatchObject({ 'anomalies.wrong-model': 2, 'anomalies.rate-limited': 5, 'anomalies.login-throttled': 1 });
    const rows = log.forDevice('pi-1');
    expect(rows.map((r) => [r.kind, r.count])).toEqual([['wrong-model', 2], ['rate-limited', 5]]);
    expect(rows[0]).toMatchObject({ firstAt: T, lastAt: T + 1000, detail: 'said hello as cm5 ; provisioned as rpi4' });
    expect(rows[1]!.detail.length).toBeLessThanOrEqual(300);
    expect(log.list({ kind: 'login-throttled' })).toEqual([]);
    await sql.transaction((tx) => log.flush(tx));
    // A flush that fails keeps what was due; the next one stores it, with the whole count.
    log.record('pi-1', 'wrong-model', 'again');
    await expect(sql.transaction(async (tx) => {
      await log.flush(tx);
      throw new Error('rolled back');
    })).rejects.toThrow('rolled back');
    log.flushRolledBack();
    await sql.transaction((tx) => log.flush(tx));
    const reloaded = await AnomalyLog.load({ sql, now: () => now, counters: new Counters(), logger: silentLogger, isKnown: () => true });
    // Rows come back in the store's order: compare by kind.
    expect(reloaded.list().map((r) => [r.deviceId, r.kind, r.count]).sort()).toEqual([['pi-1', 'rate-limited', 5], ['pi-1', 'wrong-model', 3]]);
  });
});

describe('anonymous devices are an explicit, loopback-only opt-in', () => {
  it('is off by default in every environment', () => {
    expect(loadConfig({ dataDir: '/tmp/x' }).allowAnonymousDevices).toBe(false);
  });

  it('is refused on a listener other machines can reach, and with an external broker', () => {
    expect(() => loadConfig({ dataDir: '/tmp/x', allowAnonymousDevices: true, mqtt: { host: '0.0.0.0', port: 0 } })).toThrow(/loopback listener only/);
    expect(() => loadConfig({ dataDir: '/tmp/x', allowAnonymousDevices: true, mqtt: { host: '127.0.0.1', port: 0, brokerUrl: 'mqtt://127.0.0.1:1883' } })).toThrow(/external broker/);
    expect(loadConfig({ dataDir: '/tmp/x', allowAnonymousDevices: true, mqtt: { host: '127.0.0.1', port: 0 } }).allowAnonymousDevices).toBe(true);
    expect(loadConfig({ dataDir: '/tmp/x' }, { FLEET_ALLOW_ANONYMOUS: 'true' }).allowAnonymousDevices).toBe(true);
  });

  it('knows which addresses are loopback', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'].map(isLoopbackHost)).toEqual([true, true, true, true, true, true]);
    expect(['0.0.0.0', '10.0.0.1', '::', '128.0.0.1', 'example.com'].map(isLoopbackHost)).toEqual([false, false, false, false, false]);
  });
});
