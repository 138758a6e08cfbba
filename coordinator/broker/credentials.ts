/**
 * Per-device MQTT credentials. `provision` creates a random secret (192 bits) and stores only its
 * SHA-256 (secret-hash.ts: a secret that long needs no slow hash, and its check costs microseconds, so
 * a cold cluster's reconnect storm is not held up by our own hashing — docs/credential-hashing.md);
 * `verify` checks a presented secret in constant time. A device whose secret is still stored as
 * scrypt (from before) is checked with scrypt once, and its hash is then replaced by the fast form,
 * written in batches behind the login. Those scrypt runs go through one fair, bounded queue
 * (fair-queue.ts): a few at a time, each source address in its own lane, so a storm of wrong
 * passwords from one place neither starves libuv's thread pool nor delays a device connecting from
 * elsewhere by more than a check or two. An unknown device costs the same hash and compare as a wrong
 * secret. Successful checks are remembered in memory (by a sha256 of the secret), so a reconnect costs
 * no store read.
 *
 * Which ids have credentials, and whether revoked, is kept in memory (the broker's publish
 * authorisation asks synchronously); the hash itself is read from the store at each check, so a
 * secret rotated by another coordinator on the same store counts at once. A secret remembered as
 * verified is forgotten when the device's credentials change — here (`commit`, `revoke`) or through
 * another coordinator on the same store (`forget`, `reloadDevices`, told by its change notification)
 * — and a check that was under way meanwhile is not remembered, so a revoked or rotated-out secret
 * never stays accepted. Replacing a scrypt hash by the fast form of the same secret is no change: no
 * other coordinator is told (the PostgreSQL trigger leaves it out, leadership-migrations.ts), and no
 * session is closed for it. I/O shell (the store, node:crypto).
 */
import { createHash } from 'node:crypto';
import { placeholders, type Sql } from '../store/sql.js';
import { DeviceIdSchema } from '@fleet/protocol/ids';
import { FleetError, ValidationError } from '@fleet/protocol/errors';
import { TurnBatch } from '../store/turn-batch.js';
import { BusyError, FairQueue, type FairQueueOptions } from './fair-queue.js';
import { decoyCheck, fastHash, isGeneratedSecret, newDeviceSecret, storedForm, verifyFast, verifyScrypt } from './secret-hash.js';

/**
 * For the scrypt checks of secrets stored before the fast form: two runs at once (libuv's pool has
 * four threads, shared with file I/O); a source address may have 1,000 checks waiting (a NAT'd fleet
 * reconnecting after a restart), all sources together 10,000; past that a login is refused as busy.
 */
export const DEFAULT_CHECK_QUEUE: FairQueueOptions = { concurrency: 2, maxPerLane: 1_000, maxQueued: 10_000 };

const UPSERT = `INSERT INTO device_credentials (device_id, secret_hash, created_at, revoked) VALUES (?, ?, ?, 0)
  ON CONFLICT (device_id) DO UPDATE SET secret_hash = excluded.secret_hash, created_at = excluded.created_at, revoked = 0`;

/**
 * The same secret in its fast form, only over the hash it was checked against (a rotation or
 * revocation meanwhile wins). The setting tells PostgreSQL's change trigger that this is no change
 * (leadership-migrations.ts); it lasts to the end of the transaction.
 */
const UPGRADE = 'UPDATE device_credentials SET secret_hash = ? WHERE device_id = ? AND secret_hash = ? AND revoked = 0';
const MARK_UPGRADE = "SELECT set_config('fleet.credential_upgrade', 'on', true)";
/** Rows per upgrade transaction. */
const UPGRADE_BATCH = 500;

export interface ProvisionedDevice {
  deviceId: string;
  /** Shown once; only its hash is stored. */
  secret: string;
}

/** A secret issued and not stored yet (CredentialStore.issue, then commit). */
export interface IssuedCredential extends ProvisionedDevice {
  hash: string;
}

export interface CredentialStoreOptions {
  /** Default Date.now. */
  now?: () => number;
  /** For scrypt checks of secrets stored before the fast form. Default DEFAULT_CHECK_QUEUE. */
  checkQueue?: FairQueueOptions;
  /** Scrypt hashes replaced by the fast form, per batch stored. */
  onUpgraded?: (count: number) => void;
  /** Storing a batch of replaced hashes failed (the devices stay on scrypt and are upgraded at a later login). */
  onUpgradeError?: (err: unknown, deviceIds: readonly string[]) => void;
}

/** A scrypt hash verified, to be replaced by the fast form of the same secret. */
interface Upgrade {
  from: string;
  to: string;
}

/** A check under way; a change to the device's credentials meanwhile makes its answer stale. */
interface Check {
  stale: boolean;
}

export class CredentialStore {
  private readonly verified = new Map<string, string>();
  /** Checks under way, by device. */
  private readonly checking = new Map<string, Set<Check>>();
  private readonly elsewhere = new Set<(deviceId: string) => void>();
  /** Every id ever provisioned: true when revoked. */
  private readonly known = new Map<string, boolean>();
  private readonly checks: FairQueue;
  private readonly now: () => number;
  /** Upgrades not stored yet, by device. */
  private readonly upgrades = new Map<string, Upgrade>();
  /** The devices upgraded in a turn, stored together (one store write at a time). */
  private readonly upgradeBatch = new TurnBatch<string>((ids) => this.storeUpgrades(ids));

  private constructor(
    private readonly sql: Sql,
    private readonly options: CredentialStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.checks = new FairQueue(options.checkQueue ?? DEFAULT_CHECK_QUEUE);
  }

  /** Reads which devices have credentials. */
  static async load(sql: Sql, options: CredentialStoreOptions = {}): Promise<CredentialStore> {
    const store = new CredentialStore(sql, options);
    await store.reload();
    return store;
  }

  /**
   * Reads which devices have credentials again: the seam through which provisioning or revocation by
   * another coordinator on the same store reaches this one's in-memory answers.
   */
  async reload(): Promise<void> {
    const rows = await this.sql.all<{ device_id: string; revoked: number }>('SELECT device_id, revoked FROM device_credentials');
    this.known.clear();
    for (const r of rows) this.known.set(r.device_id, r.revoked !== 0);
    this.verified.clear();
    for (const checks of this.checking.values()) for (const c of checks) c.stale = true;
  }

  /**
   * The device's credentials changed (rotated or revoked, perhaps by another coordinator on the same
   * store): a secret verified before is checked against the store again, and a check already under
   * way is not remembered.
   */
  forget(deviceId: string): void {
    this.verified.delete(deviceId);
    for (const c of this.checking.get(deviceId) ?? []) c.stale = true;
  }

  /**
   * Another coordinator of the same store changed the device's credentials (its change notification):
   * forgets the secret, and tells the listeners (the broker closes the device's session: it must not
   * outlive its secret on any node).
   */
  changedElsewhere(deviceId: string): void {
    this.forget(deviceId);
    for (const l of this.elsewhere) l(deviceId);
  }

  /** Told of each `changedElsewhere`; returns the unsubscribe. */
  onChangedElsewhere(listener: (deviceId: string) => void): () => void {
    this.elsewhere.add(listener);
    return () => this.elsewhere.delete(listener);
  }

  /** Forgets these devices' verified secrets and reads whether each has credentials, and whether revoked. */
  async reloadDevices(deviceIds: readonly string[]): Promise<void> {
    for (const id of deviceIds) this.forget(id);
    for (let i = 0; i < deviceIds.length; i += 500) {
      const chunk = deviceIds.slice(i, i + 500);
      const rows = await this.sql.all<{ device_id: string; revoked: number }>(
        `SELECT device_id, revoked FROM device_credentials WHERE device_id IN (${placeholders(chunk.length)})`,
        chunk,
      );
      const found = new Map(rows.map((r) => [r.device_id, r.revoked !== 0]));
      for (const id of chunk) {
        const revoked = found.get(id);
        if (revoked === undefined) this.known.delete(id);
        else this.known.set(id, revoked);
      }
    }
  }

  /**
   * Creates (or replaces, with `rotate`) a device's credentials. Returns the secret; it cannot be
   * recovered later.
   */
  async provision(deviceId: string, options: { rotate?: boolean } = {}): Promise<ProvisionedDevice> {
    const [p] = await this.provisionMany([deviceId], options);
    return p!;
  }

  /** Provisions many devices. */
  async provisionMany(deviceIds: readonly string[], options: { rotate?: boolean } = {}): Promise<ProvisionedDevice[]> {
    const issued = this.issue(deviceIds, options);
    await this.commit(issued);
    return issued.map(({ deviceId, secret }) => ({ deviceId, secret }));
  }

  /**
   * New secrets and their hashes, stored by nothing yet: `commit` stores them, so that a broker that
   * must learn them first (broker-accounts.ts) can refuse before any is stored. Refuses an id with
   * credentials unless `rotate`, before issuing any, so that no secret is issued and then lost with
   * the error.
   */
  issue(deviceIds: readonly string[], options: { rotate?: boolean } = {}): IssuedCredential[] {
    for (const deviceId of deviceIds) {
      const id = DeviceIdSchema.safeParse(deviceId);
      if (!id.success) throw new ValidationError('device id', [id.error.issues[0]?.message ?? 'invalid']);
      if (!options.rotate && this.has(deviceId)) throw new CredentialExistsError(deviceId);
    }
    return deviceIds.map((deviceId) => {
      const secret = newDeviceSecret();
      return { deviceId, secret, hash: fastHash(secret) };
    });
  }

  /** Stores issued credentials (replacing and un-revoking what each device had), in one transaction. */
  async commit(issued: readonly IssuedCredential[]): Promise<void> {
    const now = this.now();
    // Old secrets stop passing the in-memory check before the new ones are stored.
    for (const c of issued) this.forget(c.deviceId);
    await this.sql.transaction(async (tx) => {
      for (const c of issued) await tx.run(UPSERT, [c.deviceId, c.hash, now]);
    });
    for (const c of issued) {
      this.known.set(c.deviceId, false);
      this.forget(c.deviceId);
    }
  }

  /** Every device ever provisioned, with whether it is revoked (for the broker's accounts), by id. */
  all(): { deviceId: string; revoked: boolean }[] {
    return [...this.known]
      .map(([deviceId, revoked]) => ({ deviceId, revoked }))
      .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  }

  /** Revokes a device's credentials; false when it has none. Stored before it resolves. */
  async revoke(deviceId: string): Promise<boolean> {
    this.forget(deviceId);
    const { changes } = await this.sql.run('UPDATE device_credentials SET revoked = 1 WHERE device_id = ?', [deviceId]);
    if (changes > 0) this.known.set(deviceId, true);
    this.forget(deviceId);
    return changes > 0;
  }

  has(deviceId: string): boolean {
    return this.known.get(deviceId) === false;
  }

  /** Ever provisioned, revoked or not: such an id is never a device without credentials. */
  isProvisioned(deviceId: string): boolean {
    return this.known.has(deviceId);
  }

  /** True when `secret` is the one last verified for the device (no store read; never a refusal). */
  verifiedBefore(deviceId: string, secret: string): boolean {
    const known = this.verified.get(deviceId);
    return known !== undefined && known === createHash('sha256').update(secret).digest('hex');
  }

  /**
   * Checks a device's secret. A fast-form hash is checked at once; a scrypt one (stored before the
   * fast form) waits its turn in the fair queue, where `lane` is who asks (the source address) and
   * lanes take turns. Rejects with BusyError when that lane already has its share waiting, or when
   * `stillWanted` says no once the check's turn comes (its sender was throttled while it waited: a
   * queue of a storm's attempts is dropped, not run).
   */
  async verify(deviceId: string, secret: string, lane = 'local', stillWanted: () => boolean = () => true): Promise<boolean> {
    if (this.verifiedBefore(deviceId, secret)) return true;
    const check: Check = { stale: false };
    let checks = this.checking.get(deviceId);
    if (!checks) this.checking.set(deviceId, (checks = new Set()));
    checks.add(check);
    try {
      // From the store, not memory: a device provisioned or rotated by another coordinator on the same
      // store logs in here at once.
      const row = await this.sql.get<{ secret_hash: string }>('SELECT secret_hash FROM device_credentials WHERE device_id = ? AND revoked = 0', [deviceId]);
      if (!row) return decoyCheck(secret);
      if (!check.stale) this.known.set(deviceId, false);
      const stored = row.secret_hash;
      let ok: boolean;
      switch (storedForm(stored)) {
        case 'sha256':
          ok = verifyFast(secret, stored);
          break;
        case 'scrypt':
          ok = await this.checks.run(lane, () => {
            if (!stillWanted()) return Promise.reject(new BusyError(`login from ${lane} throttled while it waited`));
            return verifyScrypt(secret, stored);
          });
          // Only a secret of the generated shape: one a person set stays scrypt. Even when the check
          // went stale (a reload, a change elsewhere): the upgrade applies only over the very hash
          // checked, unrevoked, so a real change meanwhile makes it a no-op.
          if (ok && isGeneratedSecret(secret)) this.upgrade(deviceId, { from: stored, to: fastHash(secret) });
          break;
        case 'unknown':
          ok = decoyCheck(secret);
          break;
      }
      // The hash it was checked against may have been replaced or revoked meanwhile: answer this
      // check, remember nothing.
      if (ok && !check.stale) this.verified.set(deviceId, createHash('sha256').update(secret).digest('hex'));
      return ok;
    } finally {
      checks.delete(check);
      if (checks.size === 0) this.checking.delete(deviceId);
    }
  }

  /** Resolves when every upgrade asked for so far is stored (or its failure reported): before the store closes. */
  async settled(): Promise<void> {
    await this.upgradeBatch.idle();
  }

  /**
   * Queues a scrypt hash's replacement. One loop stores them, a batch per transaction, so a storm of
   * first logins after the upgrade costs a few transactions, not one per device, and never delays an
   * answer.
   */
  private upgrade(deviceId: string, change: Upgrade): void {
    this.upgrades.set(deviceId, change);
    // storeUpgrades reports its own failures (onUpgradeError); nothing is thrown to a login.
    void this.upgradeBatch.add(deviceId);
  }

  /** Stores the upgrades of `ids` as they stand now, UPGRADE_BATCH rows a transaction; never throws. */
  private async storeUpgrades(ids: readonly string[]): Promise<void> {
    const pending: [string, Upgrade][] = [];
    for (const id of ids) {
      const u = this.upgrades.get(id);
      this.upgrades.delete(id);
      if (u) pending.push([id, u]);
    }
    for (let i = 0; i < pending.length; i += UPGRADE_BATCH) {
      const batch = pending.slice(i, i + UPGRADE_BATCH);
      try {
        const stored = await this.sql.transaction(async (tx) => {
          if (tx.dialect === 'postgres') await tx.get(MARK_UPGRADE);
          let changes = 0;
          for (const [id, u] of batch) changes += (await tx.run(UPGRADE, [u.to, id, u.from])).changes;
          return changes;
        });
        if (stored > 0) this.options.onUpgraded?.(stored);
      } catch (err) {
        this.options.onUpgradeError?.(err, batch.map(([id]) => id));
      }
    }
  }

  /** Password checks waiting for a slot (metrics). */
  get checksWaiting(): number {
    return this.checks.waiting;
  }
}

export class CredentialExistsError extends FleetError {
  constructor(deviceId: string) {
    super('credentials-exist', `${deviceId} already has credentials; pass --rotate to issue new ones (the old secret stops working)`);
  }
}
