/**
 * Per-device MQTT credentials. `provision` creates a random secret and stores only its scrypt hash;
 * `verify` checks a presented secret in constant time. Successful checks are remembered in memory by a
 * sha256 of the secret so that a reconnect storm (10,000 devices after a broker restart) does not cost
 * 10,000 scrypt runs. Every scrypt run goes through one fair, bounded queue (fair-queue.ts): a few at
 * a time, each source address in its own lane, so a storm of wrong passwords from one place neither
 * starves libuv's thread pool nor delays a device connecting from elsewhere by more than a check or
 * two.
 *
 * Which ids have credentials, and whether revoked, is kept in memory (the broker's publish
 * authorisation asks synchronously); the hash itself is read from the store at each check, so a
 * secret rotated by another coordinator on the same store counts at once. A secret remembered as
 * verified is forgotten when the device's credentials change — here (`commit`, `revoke`) or through
 * another coordinator on the same store (`forget`, `reloadDevices`, told by its change notification)
 * — and a check that was under way meanwhile is not remembered, so a revoked or rotated-out secret
 * never stays accepted. I/O shell (the store, node:crypto).
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { placeholders, type Sql } from '../store/sql.js';
import { DeviceIdSchema } from '@fleet/protocol/ids';
import { FleetError, ValidationError } from '@fleet/protocol/errors';
import { BusyError, FairQueue, type FairQueueOptions } from './fair-queue.js';

/** log2 of scrypt's N. 14 (16,384) is the production floor; tests and the simulator may go lower. */
export const DEFAULT_SCRYPT_LOG_N = 14;

function scryptAsync(secret: string, salt: Buffer, logN: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, 32, { N, r: 8, p: 1, maxmem: 256 * N * 8 + 1024 * 1024 }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** Formats `scrypt$logN$r$p$salt$hash`. */
export async function hashSecret(secret: string, logN = DEFAULT_SCRYPT_LOG_N): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, logN);
  return `scrypt$${logN}$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const logN = Number(parts[1]);
  if (!Number.isInteger(logN) || logN < 1 || logN > 20) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await scryptAsync(secret, salt, logN);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * Two scrypt runs at once (libuv's pool has four threads, shared with file I/O); a source address may
 * have 1,000 checks waiting (a NAT'd fleet reconnecting after a restart), all sources together 10,000;
 * past that a login is refused as busy.
 */
export const DEFAULT_CHECK_QUEUE: FairQueueOptions = { concurrency: 2, maxPerLane: 1_000, maxQueued: 10_000 };

const UPSERT = `INSERT INTO device_credentials (device_id, secret_hash, created_at, revoked) VALUES (?, ?, ?, 0)
  ON CONFLICT (device_id) DO UPDATE SET secret_hash = excluded.secret_hash, created_at = excluded.created_at, revoked = 0`;

/** The lane of provisioning's hashing: the operator's own work, never refused, taking turns with logins. */
const PROVISIONING_LANE = 'operator:provisioning';

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
  /** log2 of scrypt's N for new secrets. Default DEFAULT_SCRYPT_LOG_N. */
  logN?: number;
  /** Default Date.now. */
  now?: () => number;
  /** Default DEFAULT_CHECK_QUEUE. */
  checkQueue?: FairQueueOptions;
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
  private readonly logN: number;
  private readonly now: () => number;

  private constructor(
    private readonly sql: Sql,
    options: CredentialStoreOptions,
  ) {
    this.logN = options.logN ?? DEFAULT_SCRYPT_LOG_N;
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

  /** Provisions many devices; hashing runs on libuv's thread pool, a few at a time. */
  async provisionMany(deviceIds: readonly string[], options: { rotate?: boolean } = {}): Promise<ProvisionedDevice[]> {
    const issued = await this.issue(deviceIds, options);
    await this.commit(issued);
    return issued.map(({ deviceId, secret }) => ({ deviceId, secret }));
  }

  /**
   * New secrets and their hashes, stored by nothing yet: `commit` stores them, so that a broker that
   * must learn them first (broker-accounts.ts) can refuse before any is stored. Refuses an id with
   * credentials unless `rotate`, before issuing any, so that no secret is issued and then lost with
   * the error.
   */
  async issue(deviceIds: readonly string[], options: { rotate?: boolean } = {}): Promise<IssuedCredential[]> {
    for (const deviceId of deviceIds) {
      const id = DeviceIdSchema.safeParse(deviceId);
      if (!id.success) throw new ValidationError('device id', [id.error.issues[0]?.message ?? 'invalid']);
      if (!options.rotate && this.has(deviceId)) throw new CredentialExistsError(deviceId);
    }
    const out: IssuedCredential[] = [];
    const width = 8;
    for (let i = 0; i < deviceIds.length; i += width) {
      out.push(
        ...(await Promise.all(
          deviceIds.slice(i, i + width).map(async (deviceId) => {
            const secret = randomBytes(24).toString('base64url');
            const hash = await this.checks.run(PROVISIONING_LANE, () => hashSecret(secret, this.logN), false);
            return { deviceId, secret, hash };
          }),
        )),
      );
    }
    return out;
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

  /** True when `secret` is the one last verified for the device (no scrypt run; never a refusal). */
  verifiedBefore(deviceId: string, secret: string): boolean {
    const known = this.verified.get(deviceId);
    return known !== undefined && known === createHash('sha256').update(secret).digest('hex');
  }

  /**
   * Checks a device's secret. `lane` is who asks (the source address): checks run a few at a time,
   * lanes in turn. Rejects with BusyError when that lane already has its share waiting, or when
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
      if (!row) return false;
      if (!check.stale) this.known.set(deviceId, false);
      const ok = await this.checks.run(lane, () => {
        if (!stillWanted()) return Promise.reject(new BusyError(`login from ${lane} throttled while it waited`));
        return verifySecret(secret, row.secret_hash);
      });
      // The hash it was checked against may have been replaced or revoked meanwhile: answer this
      // check, remember nothing.
      if (ok && !check.stale) this.verified.set(deviceId, createHash('sha256').update(secret).digest('hex'));
      return ok;
    } finally {
      checks.delete(check);
      if (checks.size === 0) this.checking.delete(deviceId);
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
