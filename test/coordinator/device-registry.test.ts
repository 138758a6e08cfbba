/** The device registry keeps operator-assigned tags apart from the ones a device reports (SQLite file). */
import { afterEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { ALL_MIGRATIONS } from '../../coordinator/store/migration-list.js';
import { DeviceRegistry, matchesTarget } from '../../coordinator/registry/device-registry.js';
import type { HelloMessage } from '../../protocol/messages.js';
import { bucketOf } from '../../protocol/bucket.js';
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

describe('device registry: operator and reported tags', () => {
  it('a hello does not overwrite the tags set at provisioning; targeting sees the union', () => {
    const db = openDatabase(dbPath());
    cleanups.push(() => closeDatabase(db));
    const reg = DeviceRegistry.load(db);
    const id = uniqueId('dev');
    reg.provisioned(id, T, { hardwareModel: 'rpi4', tags: ['site-berlin', 'beta'] });
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
  });

  it('rotating credentials without tags keeps the operator tags; with tags replaces them', () => {
    const db = openDatabase(dbPath());
    cleanups.push(() => closeDatabase(db));
    const reg = DeviceRegistry.load(db);
    const id = uniqueId('dev');
    reg.provisioned(id, T, { tags: ['a'] });
    reg.applyHello(hello(id, ['own']), T + 1);
    expect(reg.provisioned(id, T + 2).tags).toEqual(['a', 'own']);
    expect(reg.provisioned(id, T + 3, { tags: ['b'] }).tags).toEqual(['b', 'own']);
  });

  it('both survive a restart', () => {
    const path = dbPath();
    const db = openDatabase(path);
    const id = uniqueId('dev');
    const reg = DeviceRegistry.load(db);
    reg.provisioned(id, T, { hardwareModel: 'rpi4', tags: ['fleet-a'] });
    reg.applyHello(hello(id, ['wifi']), T + 1);
    closeDatabase(db);
    const db2 = openDatabase(path);
    cleanups.push(() => closeDatabase(db2));
    const d = DeviceRegistry.load(db2).get(id)!;
    expect(d).toMatchObject({ operatorTags: ['fleet-a'], reportedTags: ['wifi'], tags: ['fleet-a', 'wifi'] });
  });

  it('the migration moves the provisioning tags of devices that never said hello to the operator tags', () => {
    const path = dbPath();
    // A database from before migration 8: provisioning tags and hello tags shared one column.
    const old = openDatabase(path, { migrations: ALL_MIGRATIONS.filter((m) => m.version < 8) });
    old.prepare("INSERT INTO devices (device_id, bucket, tags, provisioned_at) VALUES ('never-hello', 1, '[\"lab\"]', 5)").run();
    old.prepare("INSERT INTO devices (device_id, bucket, tags, provisioned_at, last_hello) VALUES ('said-hello', 2, '[\"own\"]', 5, 6)").run();
    closeDatabase(old);
    const db = openDatabase(path);
    cleanups.push(() => closeDatabase(db));
    const reg = DeviceRegistry.load(db);
    expect(reg.get('never-hello')).toMatchObject({ operatorTags: ['lab'], reportedTags: [], tags: ['lab'] });
    expect(reg.get('said-hello')).toMatchObject({ operatorTags: [], reportedTags: ['own'], tags: ['own'] });
  });
});

describe('device registry: the update a device last reported', () => {
  it('follows its statuses after the hello, and keeps the latest across a reload', () => {
    const path = dbPath();
    const db = openDatabase(path);
    cleanups.push(() => closeDatabase(db));
    const reg = DeviceRegistry.load(db);
    const id = uniqueId('dev');
    reg.applyHello({ ...hello(id, []), update: { deploymentId: 'dep-1', state: 'trial', toVersion: '1.1.0' } }, T);
    expect(reg.get(id)?.update).toMatchObject({ deploymentId: 'dep-1', state: 'trial' });
    reg.noteUpdate(id, { deploymentId: 'dep-1', state: 'committed', toVersion: '1.1.0' });
    reg.noteUpdate(id, { deploymentId: 'dep-1', state: 'rolled-back', toVersion: '1.0.0' });
    expect(reg.get(id)?.update).toEqual({ deploymentId: 'dep-1', state: 'rolled-back', toVersion: '1.0.0' });
    expect(DeviceRegistry.load(db).get(id)?.update).toEqual({ deploymentId: 'dep-1', state: 'rolled-back', toVersion: '1.0.0' });
    // A status from a device the registry does not know changes nothing.
    reg.noteUpdate('unknown-device', { deploymentId: 'dep-1', state: 'committed' });
    expect(reg.get('unknown-device')).toBeUndefined();
  });
});
