/**
 * Device secrets stored as scrypt by an earlier coordinator, on SQLite and PostgreSQL: checked with
 * scrypt once, then stored as sha256 of the same secret (never a person's secret, never over a
 * rotation made meanwhile), and a wrong secret or an unknown device is refused the same way. On
 * PostgreSQL the upgrade is no credential change: other replicas are not told (they would close the
 * device's session), while a rotation or revocation still is.
 */
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { fastHash, scryptHash } from '../../coordinator/broker/secret-hash.js';
import { CREDENTIALS_CHANNEL } from '../../coordinator/cluster/leadership-migrations.js';
import { openPostgresStore } from '../../coordinator/store/open-store.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { STORE_KINDS, freshPostgresUrl, openTestStore } from '../support/postgres.js';
import { waitFor } from '../support/wait-for.js';

const hashOf = async (sql: Sql, id: string): Promise<string | undefined> =>
  (await sql.get<{ secret_hash: string }>('SELECT secret_hash FROM device_credentials WHERE device_id = ?', [id]))?.secret_hash;

/** Stores `hash` as the device's, as a coordinator before the fast form did. */
async function storeLegacy(sql: Sql, id: string, hash: string): Promise<void> {
  await sql.run('UPDATE device_credentials SET secret_hash = ? WHERE device_id = ?', [hash, id]);
}

describe.each(STORE_KINDS)('device secrets stored as scrypt, on %s', (kind) => {
  it('verify once with scrypt, then are stored as sha256 of the same secret', async () => {
    const sql = await openTestStore(kind);
    const upgraded: number[] = [];
    const here = await CredentialStore.load(sql, { onUpgraded: (n) => upgraded.push(n) });
    const { secret } = await here.provision('legacy-a');
    const { secret: other } = await here.provision('legacy-b');
    const legacy = await scryptHash(secret, 4);
    await storeLegacy(sql, 'legacy-a', legacy);
    await storeLegacy(sql, 'legacy-b', await scryptHash(other, 4));

    // A wrong secret: refused, and the hash stays as it was.
    expect(await here.verify('legacy-a', other)).toBe(false);
    await here.settled();
    expect(await hashOf(sql, 'legacy-a')).toBe(legacy);

    expect(await here.verify('legacy-a', secret)).toBe(true);
    await here.settled();
    expect(await hashOf(sql, 'legacy-a')).toBe(fastHash(secret));
    expect(upgraded).toEqual([1]);
    expect((await hashOf(sql, 'legacy-b'))?.startsWith('scrypt$')).toBe(true);

    // Another coordinator on the store (or this one restarted) checks the fast form.
    const there = await CredentialStore.load(sql);
    expect(await there.verify('legacy-a', secret)).toBe(true);
    expect(await there.verify('legacy-a', other)).toBe(false);
    expect(await there.verify('legacy-b', other)).toBe(true);
    await there.settled();
    expect(await hashOf(sql, 'legacy-b')).toBe(fastHash(other));
  });

  it('many first logins at once are stored together', async () => {
    const sql = await openTestStore(kind);
    const upgraded: number[] = [];
    const here = await CredentialStore.load(sql, { onUpgraded: (n) => upgraded.push(n) });
    const devices = await here.provisionMany(Array.from({ length: 12 }, (_, i) => `storm-${i}`));
    for (const d of devices) await storeLegacy(sql, d.deviceId, await scryptHash(d.secret, 4));
    const answers = await Promise.all(devices.map((d) => here.verify(d.deviceId, d.secret, `10.0.0.${devices.indexOf(d)}`)));
    expect(answers.every(Boolean)).toBe(true);
    await here.settled();
    for (const d of devices) expect(await hashOf(sql, d.deviceId)).toBe(fastHash(d.secret));
    expect(upgraded.reduce((a, b) => a + b, 0)).toBe(12);
  });

  it('a secret of another shape (a person could have chosen it) stays scrypt', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    await here.provision('chosen-1');
    const chosen = 'a password somebody typed in once';
    const legacy = await scryptHash(chosen, 4);
    await storeLegacy(sql, 'chosen-1', legacy);
    expect(await here.verify('chosen-1', chosen)).toBe(true);
    await here.settled();
    expect(await hashOf(sql, 'chosen-1')).toBe(legacy);
  });

  it('a reload while the scrypt check runs (a replica reconnecting to its notifications) still upgrades', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const { secret } = await here.provision('reloaded-1');
    await storeLegacy(sql, 'reloaded-1', await scryptHash(secret, 4));
    const checking = here.verify('reloaded-1', secret);
    await here.reload();
    expect(await checking).toBe(true);
    await here.settled();
    expect(await hashOf(sql, 'reloaded-1')).toBe(fastHash(secret));
  });

  it('an upgrade never overwrites a rotation or revocation made while its check ran', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const there = await CredentialStore.load(sql);
    const { secret: old } = await here.provision('race-1');
    await storeLegacy(sql, 'race-1', await scryptHash(old, 4));
    // On SQLite the hash is read at once, so this check runs against the scrypt hash rotated out below.
    const checking = here.verify('race-1', old);
    const { secret: rotated } = await there.provision('race-1', { rotate: true });
    await checking;
    await here.settled();
    expect(await hashOf(sql, 'race-1')).toBe(fastHash(rotated));
    here.forget('race-1');
    expect(await here.verify('race-1', old)).toBe(false);
    expect(await here.verify('race-1', rotated)).toBe(true);

    const { secret } = await here.provision('race-2');
    await storeLegacy(sql, 'race-2', await scryptHash(secret, 4));
    const revoking = here.verify('race-2', secret);
    await there.revoke('race-2');
    await revoking;
    await here.settled();
    expect((await sql.get<{ revoked: number }>('SELECT revoked FROM device_credentials WHERE device_id = ?', ['race-2']))?.revoked).toBe(1);
    here.forget('race-2');
    expect(await here.verify('race-2', secret)).toBe(false);
  });

  it('an unknown device, a revoked one and a stored form nobody wrote are refused like a wrong secret', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const { secret } = await here.provision('known-1');
    expect(await here.verify('never-provisioned', secret)).toBe(false);
    expect(await here.verify('known-1', `${secret.slice(1)}x`)).toBe(false);
    await storeLegacy(sql, 'known-1', `plain$${secret}`);
    expect(await here.verify('known-1', secret)).toBe(false);
    await here.revoke('known-1');
    expect(await here.verify('known-1', secret)).toBe(false);
    await here.settled();
    expect(await hashOf(sql, 'known-1')).toBe(`plain$${secret}`);
  });
});

describe('credential notifications on PostgreSQL', () => {
  it('an upgrade tells no replica; a rotation and a revocation do', async () => {
    const url = await freshPostgresUrl();
    const sql = await openPostgresStore(url);
    onTestFinished(() => sql.close());
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    onTestFinished(() => listener.end());
    const told: string[] = [];
    listener.on('notification', (n) => {
      if (n.channel === CREDENTIALS_CHANNEL) told.push(n.payload ?? '');
    });
    await listener.query(`LISTEN ${CREDENTIALS_CHANNEL}`);

    const here = await CredentialStore.load(sql);
    const { secret } = await here.provision('told-1');
    await here.provision('marker-1');
    await storeLegacy(sql, 'told-1', await scryptHash(secret, 4));
    await waitFor(() => told.filter((id) => id === 'told-1').length === 2 && told.includes('marker-1'), 'provisioning and the legacy hash announced');
    told.length = 0;

    expect(await here.verify('told-1', secret)).toBe(true);
    await here.settled();
    expect(await hashOf(sql, 'told-1')).toBe(fastHash(secret));
    // Notifications arrive in commit order: once the later revocation's is here, the upgrade's would be.
    await here.revoke('marker-1');
    await waitFor(() => told.includes('marker-1'), 'the revocation announced');
    expect(told).toEqual(['marker-1']);

    await here.provision('told-1', { rotate: true });
    await waitFor(() => told.includes('told-1'), 'the rotation announced');
  });
});
