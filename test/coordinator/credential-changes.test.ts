/**
 * A secret one coordinator verified and remembered stops counting once the device's credentials
 * change, whoever changed them: two CredentialStores on one store (two replicas, or a restart), on
 * SQLite and PostgreSQL. The change notification between replicas is `forget` / `reloadDevices` here;
 * test/cluster/replica-trust.test.ts proves it between real processes.
 */
import { describe, expect, it } from 'vitest';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';

describe.each(STORE_KINDS)('credential changes between coordinators on %s', (kind) => {
  it('a remembered secret rotated or revoked elsewhere is refused once told; the new one is accepted', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const there = await CredentialStore.load(sql);
    const { secret: old } = await here.provision('cred-a');
    expect(await there.verify('cred-a', old)).toBe(true);
    expect(there.verifiedBefore('cred-a', old)).toBe(true);

    const { secret: rotated } = await here.provision('cred-a', { rotate: true });
    expect(await here.verify('cred-a', old)).toBe(false);
    there.forget('cred-a');
    expect(there.verifiedBefore('cred-a', old)).toBe(false);
    expect(await there.verify('cred-a', old)).toBe(false);
    expect(await there.verify('cred-a', rotated)).toBe(true);

    expect(await here.revoke('cred-a')).toBe(true);
    expect(there.has('cred-a')).toBe(true);
    await there.reloadDevices(['cred-a', 'never-provisioned']);
    expect(there.has('cred-a')).toBe(false);
    expect(there.isProvisioned('cred-a')).toBe(true);
    expect(there.isProvisioned('never-provisioned')).toBe(false);
    expect(await there.verify('cred-a', rotated)).toBe(false);
  });

  it('a check under way when the credentials change is answered, not remembered', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const there = await CredentialStore.load(sql);
    const { secret } = await here.provision('cred-b');
    // On SQLite the hash is read at once, so this check runs against the secret revoked below.
    const checking = there.verify('cred-b', secret);
    await here.revoke('cred-b');
    there.forget('cred-b');
    await checking;
    expect(there.verifiedBefore('cred-b', secret)).toBe(false);
    expect(await there.verify('cred-b', secret)).toBe(false);
  });

  it('reload forgets every remembered secret', async () => {
    const sql = await openTestStore(kind);
    const here = await CredentialStore.load(sql);
    const there = await CredentialStore.load(sql);
    const { secret } = await here.provision('cred-c');
    expect(await there.verify('cred-c', secret)).toBe(true);
    await here.revoke('cred-c');
    await there.reload();
    expect(await there.verify('cred-c', secret)).toBe(false);
    expect(there.has('cred-c')).toBe(false);
  });
});
