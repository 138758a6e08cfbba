/**
 * The device registry on both stores: operator-assigned tags kept apart from the ones a device reports,
 * the update a device last reported, what survives a restart (presence only where it outlives the process), last-seen times flushed in a
 * transaction (due again when it rolls back), writes of one device landing in order, and another coordinator's changes read back
 * without losing a change made here while the rows were read.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { ALL_MIGRATIONS } from '../../coordinator/store/migration-list.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { DeviceRegistry, matchesTarget } from '../../coordinator/registry/device-registry.js';
import type { HelloMessage } from '../../protocol/messages.js';
import { bucketOf } from '../../protocol/bucket.js';
import type { Sql, SqlParams } from '../../coordinator/store/sql.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';
import { tempDbPath as dbPath, uniqueId } from './helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function hello(deviceId: string, tags: string[]): HelloMessage {
  return {
    v: 1, kind: 'hello', deviceId, hardwareModel: 'rpi4', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: '1.0.0',
    bucket: bucketOf(deviceId), tags, securityFloor: 0, at: 1,
  };
}

const T = 1_800_000_000_000;

/** `store`, with the rows of every read held back until `release` (a read slower than the writes around it). */
function heldReads(store: Sql): { sql: Sql; hold: () => void; release: () => void } {
  let gate: Promise<void> | undefined;
  let open = (): void => {};
  const all = async <T>(query: string, params?: SqlParams): Promise<T[]> => {
    const rows = await store.all<T>(query, params);
    await gate;
    return rows;
  };
  const sql = new Proxy(store, {
    get: (target, prop) => (prop === 'all' ? all : (Reflect.get(target, prop, target) as unknown)),
  });
  return {
    sql,
    hold: () => {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    release: () => open(),
  };
}

describe.each(STORE_KINDS)('device registry on %s', (kind) => {
  it('a hello does not overwrite the tags set at provisioning; targeting sees the union', async () => {
    const reg = await DeviceRegistry.load(await openTestStore(kind));
    const id = uniqueId('dev');
    await reg.provisioned(id, T, { hardwareModel: 'rpi4', tags: ['site-berlin', 'beta'] });
    const d = reg.applyHello(hello(id, ['lte', 'beta']), T + 1);
    expect(d.operatorTags).toEqual(['site-berlin', 'beta']);
    expect(d.reportedTags).toEqual(['lte', 'beta']);
    expect(d.tags).toEqual(['site-berlin', 'beta', 'lte']);
    expect(matchesTarget(d, { hardware: ['rpi4'], tags: ['site-berlin', 'lte'] })).toBe(true);
    expect(reg.matching({ hardware: ['rpi4'], tags: ['site-berlin'] }).map((x) => x.deviceId)).toEqual([id]);
    expect(reg.list({ tag: 'site-berlin' }).map((x) => x.deviceId)).toEqual([id]);

    // The next hello replaces only the device's own tags.
    const again = reg.applyHello(hello(id, []), T + 2);
    expect(again.tags).toEqual(['site-berlin', 'beta']);
    expect(again.reportedTags).toEqual([]);
    await reg.idle();
  });

  it('rotating credentials without tags keeps the operator tags; with tags replaces them', async () => {
    const reg = await DeviceRegistry.load(await openTestStore(kind));
    const id = uniqueId('dev');
    await reg.provisioned(id, T, { tags: ['a'] });
    reg.applyHello(hello(id, ['own']), T + 1);
    expect((await reg.provisioned(id, T + 2)).tags).toEqual(['a', 'own']);
    expect((await reg.provisioned(id, T + 3, { tags: ['b'] })).tags).toEqual(['b', 'own']);
  });

  it('tags, the reported update and last-seen times survive a restart; devices come back offline', async () => {
    const store = await openTestStore(kind);
    const id = uniqueId('dev');
    const reg = await DeviceRegistry.load(store);
    await reg.provisioned(id, T, { hardwareModel: 'rpi4', tags: ['fleet-a'] });
    reg.applyHello({ ...hello(id, ['wifi']), update: { deploymentId: 'dep-1', state: 'trial', toVersion: '1.1.0' } }, T + 1);
    expect(reg.get(id)?.update).toMatchObject({ deploymentId: 'dep-1', state: 'trial' });
    reg.noteUpdate(id, { deploymentId: 'dep-1', state: 'committed', toVersion: '1.1.0' });
    reg.noteUpdate(id, { deploymentId: 'dep-1', state: 'rolled-back', toVersion: '1.0.0' });
    reg.noteVersion(id, '1.0.0', 'B');
    reg.seen(id, T + 50);
    await reg.idle();
    await store.transaction((tx) => reg.flushSeen(tx));
    // A status from a device the registry does not know changes nothing.
    reg.noteUpdate('unknown-device', { deploymentId: 'dep-1', state: 'committed' });
    expect(reg.get('unknown-device')).toBeUndefined();

    const d = (await DeviceRegistry.load(store)).get(id)!;
    expect(d).toMatchObject({
      operatorTags: ['fleet-a'], reportedTags: ['wifi'], tags: ['fleet-a', 'wifi'], online: false, lastSeen: T + 50, firstSeen: T + 1,
      firmwareVersion: '1.0.0', activeSlot: 'B', provisionedAt: T, hardwareModel: 'rpi4',
    });
    expect(d.update).toEqual({ deploymentId: 'dep-1', state: 'rolled-back', toVersion: '1.0.0' });
  });

  it('keeps the stored presence when it outlives the process (a broker not its own), and only then', async () => {
    const store = await openTestStore(kind);
    const [up, down] = [uniqueId('dev'), uniqueId('dev')];
    const reg = await DeviceRegistry.load(store);
    reg.applyHello(hello(up, []), T);
    reg.applyHello(hello(down, []), T);
    reg.setOnline(down, false, T + 1);
    await reg.idle();
    const kept = await DeviceRegistry.load(store, { presenceOutlivesProcess: true });
    expect([kept.get(up)?.online, kept.get(down)?.online]).toEqual([true, false]);
    const reset = await DeviceRegistry.load(store);
    expect([reset.get(up)?.online, reset.get(down)?.online]).toEqual([false, false]);
  });

  it("writes one device's changes in order, the last one winning, however many are in flight", async () => {
    const store = await openTestStore(kind);
    const reg = await DeviceRegistry.load(store);
    const ids = Array.from({ length: 20 }, () => uniqueId('dev'));
    for (let round = 0; round < 30; round++) {
      for (const id of ids) {
        reg.applyHello(hello(id, [`r${round}`]), T + round);
        reg.setOnline(id, round % 2 === 0, T + round);
      }
    }
    await reg.idle();
    const rows = await store.all<{ device_id: string; tags: string; online: number; last_seen: number }>('SELECT device_id, tags, online, last_seen FROM devices');
    expect(rows).toHaveLength(ids.length);
    for (const r of rows) expect([r.tags, r.online, r.last_seen]).toEqual(['["r29"]', 0, T + 29]);
  });

  it('a failed write is reported, not thrown, and the next change stores the record', async () => {
    const store = await openTestStore(kind);
    const failures: string[] = [];
    const reg = await DeviceRegistry.load(store, { onWriteError: (_err, id) => failures.push(id) });
    const id = uniqueId('dev');
    await store.run('ALTER TABLE devices RENAME TO devices_away');
    reg.applyHello(hello(id, []), T);
    await reg.idle();
    expect(failures).toEqual([id]);
    await store.run('ALTER TABLE devices_away RENAME TO devices');
    reg.noteVersion(id, '2.0.0');
    await reg.idle();
    expect(await store.get('SELECT firmware_version FROM devices WHERE device_id = ?', [id])).toEqual({ firmware_version: '2.0.0' });
  });

  it('a rolled-back last-seen flush leaves those devices due: the next flush stores them', async () => {
    const store = await openTestStore(kind);
    const reg = await DeviceRegistry.load(store);
    const id = uniqueId('dev');
    reg.applyHello(hello(id, []), T);
    await reg.idle();
    reg.seen(id, T + 40);
    await expect(store.transaction(async (tx) => {
      await reg.flushSeen(tx);
      throw new Error('rolled back');
    })).rejects.toThrow('rolled back');
    reg.flushRolledBack();
    expect(await store.get('SELECT last_seen FROM devices WHERE device_id = ?', [id])).toEqual({ last_seen: T });
    await store.transaction((tx) => reg.flushSeen(tx));
    expect(await store.get('SELECT last_seen FROM devices WHERE device_id = ?', [id])).toEqual({ last_seen: T + 40 });
  });

  it('a reload keeps the record of a device changed here while its row was read (the row may predate the change)', async () => {
    const store = await openTestStore(kind);
    const reads = heldReads(store);
    const here = await DeviceRegistry.load(reads.sql);
    const there = await DeviceRegistry.load(store);
    const [before, during] = [uniqueId('dev'), uniqueId('dev')];
    for (const id of [before, during]) await there.provisioned(id, T, { tags: ['old'] });
    await here.reload();
    // One device changed just before the read, stored while it runs; the other changed and stored while it runs.
    here.applyHello(hello(before, ['new']), T + 1);
    reads.hold();
    const reload = here.reload();
    here.applyHello(hello(during, ['new']), T + 2);
    await here.idle();
    reads.release();
    await reload;
    for (const id of [before, during]) {
      expect(here.get(id)?.reportedTags).toEqual(['new']);
      expect(await store.get('SELECT tags FROM devices WHERE device_id = ?', [id])).toEqual({ tags: '["new"]' });
    }
    // Once nothing is pending, a reload reads the store again.
    await there.provisioned(during, T + 3, { tags: ['op'] });
    await here.reload([during]);
    expect(here.get(during)?.operatorTags).toEqual(['op']);
  });

  it("reads another coordinator's changes on reload", async () => {
    const store = await openTestStore(kind);
    const here = await DeviceRegistry.load(store, { requireProvisioning: true });
    const there = await DeviceRegistry.load(store, { requireProvisioning: true });
    const id = uniqueId('dev');
    await there.provisioned(id, T, { hardwareModel: 'cm4', tags: ['x'] });
    expect(here.get(id)).toBeUndefined();
    await here.reload([id]);
    expect(here.get(id)).toMatchObject({ hardwareModel: 'cm4', operatorTags: ['x'], ghost: false });
    await there.provisioned(id, T + 1, { tags: ['y'] });
    const held = here.get(id)!;
    await here.reload();
    // The same object, updated: whoever holds it sees the change.
    expect(held.operatorTags).toEqual(['y']);
  });
});

describe('device registry: SQLite migrations', () => {
  it('the migration moves the provisioning tags of devices that never said hello to the operator tags', async () => {
    const path = dbPath();
    // A database from before migration 8: provisioning tags and hello tags shared one column.
    const old = openDatabase(path, { migrations: ALL_MIGRATIONS.filter((m) => m.version < 8) });
    old.prepare("INSERT INTO devices (device_id, bucket, tags, provisioned_at) VALUES ('never-hello', 1, '[\"lab\"]', 5)").run();
    old.prepare("INSERT INTO devices (device_id, bucket, tags, provisioned_at, last_hello) VALUES ('said-hello', 2, '[\"own\"]', 5, 6)").run();
    closeDatabase(old);
    const db = openDatabase(path);
    cleanups.push(() => closeDatabase(db));
    const reg = await DeviceRegistry.load(new SqliteSql(db));
    expect(reg.get('never-hello')).toMatchObject({ operatorTags: ['lab'], reportedTags: [], tags: ['lab'] });
    expect(reg.get('said-hello')).toMatchObject({ operatorTags: [], reportedTags: ['own'], tags: ['own'] });
  });
});
