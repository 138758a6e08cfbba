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
 * authorisation asks synchronously); the hash itself is read from the store at each uncached check.
 * A remembered secret is dropped the moment its device's credentials change: here (provision, rotate,
 * revoke, before the change is stored), and on another coordinator of the same store through
 * `refresh`, which the `fleet_device_changed` notification calls (it compares the stored hash the
 * secret was verified against). I/O shell (the store, node:crypto).
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

/** A secret that passed its check: its sha256, and the stored hash it was checked against. */
interface Verified {
  secret: string;
  storedHash: string;
}

const sha256 = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export class CredentialStore {
  private readonly verified = new Map<string, Verified>();
  /**
   * Bumped whenever a device's credentials change: a check that read the stored hash before the change
   * and ends after it must not remember the secret (it may be the old one).
   */
  private changes = 0;
  private readonly changeListeners = new Set<(deviceIds: readonly string[]) => void>();
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
    this.changes++;
  }

  /**
   * Reads these devices' credentials again (another coordinator of the same store changed them, or may
   * have): a remembered secret whose stored hash changed, or whose device was revoked, is forgotten,
   * and those devices are reported to `onChange` listeners (the broker closes their sessions). A few
   * statements for any number of devices.
   */
  async refresh(deviceIds: readonly string[]): Promise<string[]> {
    const rows = new Map<string, { secret_hash: string; revoked: number }>();
    for (let i = 0; i < deviceIds.length; i += 500) {
      const chunk = deviceIds.slice(i, i + 500);
      const got = await this.sql.all<{ device_id: string; secret_hash: string; revoked: number }>(
        `SELECT device_id, secret_hash, revoked FROM device_credentials WHERE device_id IN (${placeholders(chunk.length)})`,
        chunk,
      );
      for (const r of got) rows.set(r.device_id, r);
    }
    const changed: string[] = [];
    for (const id of deviceIds) {
      const row = rows.get(id);
      const wasActive = this.known.get(id) === false;
      const active = row !== undefined && row.revoked === 0;
      if (row) this.known.set(id, row.revoked !== 0);
      else this.known.delete(id);
      const v = this.verified.get(id);
      const stale = v !== undefined && (!active || row.secret_hash !== v.storedHash);
      if (stale) this.verified.delete(id);
      if (stale || (wasActive && !active)) changed.push(id);
    }
    if (changed.length) this.changed(changed);
    return changed;
  }

  /** Told which devices' remembered secrets `refresh` dropped (their credentials changed elsewhere). */
  onChange(listener: (deviceIds: readonly string[]) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private changed(deviceIds: readonly string[]): void {
    this.changes++;
    for (const l of this.changeListeners) l(deviceIds);
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
    for (const c of issued) this.verified.delete(c.deviceId);
    this.changes++;
    await this.sql.transaction(async (tx) => {
      for (const c of issued) await tx.run(UPSERT, [c.deviceId, c.hash, now]);
    });
    for (const c of issued) {
      this.known.set(c.deviceId, false);
      this.verified.delete(c.deviceId);
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
    this.verified.delete(deviceId);
    this.changes++;
    const { changes } = await this.sql.run('UPDATE device_credentials SET revoked = 1 WHERE device_id = ?', [deviceId]);
    if (changes > 0) this.known.set(deviceId, true);
    this.verified.delete(deviceId);
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
    return known !== undefined && known.secret === sha256(secret);
  }

  /**
   * Checks a device's secret. `lane` is who asks (the source address): checks run a few at a time,
   * lanes in turn. Rejects with BusyError when that lane already has its share waiting, or when
   * `stillWanted` says no once the check's turn comes (its sender was throttled while it waited: a
   * queue of a storm's attempts is dropped, not run).
   */
  async verify(deviceId: string, secret: string, lane = 'local', stillWanted: () => boolean = () => true): Promise<boolean> {
    if (this.verifiedBefore(deviceId, secret)) return true;
    const changesBefore = this.changes;
    // From the store, not memory: a device provisioned or rotated by another coordinator on the same
    // store logs in here at once.
    const row = await this.sql.get<{ secret_hash: string }>('SELECT secret_hash FROM device_credentials WHERE device_id = ? AND revoked = 0', [deviceId]);
    if (!row) return false;
    this.known.set(deviceId, false);
    const ok = await this.checks.run(lane, () => {
      if (!stillWanted()) return Promise.reject(new BusyError(`login from ${lane} throttled while it waited`));
      return verifySecret(secret, row.secret_hash);
    });
    // Remembered only if no credentials changed while it was checked: the hash read may be stale.
    if (ok && this.changes === changesBefore) this.verified.set(deviceId, { secret: sha256(secret), storedHash: row.secret_hash });
    return ok;
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
