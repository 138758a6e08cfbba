/**
 * Per-device MQTT credentials. `provision` creates a random secret and stores only its scrypt hash;
 * `verify` checks a presented secret in constant time. Successful checks are remembered in memory by a
 * sha256 of the secret so that a reconnect storm (10,000 devices after a broker restart) does not cost
 * 10,000 scrypt runs. I/O shell (SQLite, node:crypto).
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { Db } from '../store/db.js';
import { DeviceIdSchema } from '../../protocol/ids.js';
import { FleetError, ValidationError } from '../../protocol/errors.js';

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

export interface ProvisionedDevice {
  deviceId: string;
  /** Shown once; only its hash is stored. */
  secret: string;
}

export class CredentialStore {
  private readonly verified = new Map<string, string>();

  constructor(
    private readonly db: Db,
    private readonly logN: number = DEFAULT_SCRYPT_LOG_N,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Creates (or replaces, with `rotate`) a device's credentials. Returns the secret; it cannot be
   * recovered later.
   */
  async provision(deviceId: string, options: { rotate?: boolean } = {}): Promise<ProvisionedDevice> {
    const id = DeviceIdSchema.safeParse(deviceId);
    if (!id.success) throw new ValidationError('device id', [id.error.issues[0]?.message ?? 'invalid']);
    const existing = this.db.prepare('SELECT revoked FROM device_credentials WHERE device_id = ?').get(deviceId) as { revoked: number } | undefined;
    if (existing && existing.revoked === 0 && !options.rotate) {
      throw new CredentialExistsError(deviceId);
    }
    const secret = randomBytes(24).toString('base64url');
    const hash = await hashSecret(secret, this.logN);
    this.db
      .prepare(`INSERT INTO device_credentials (device_id, secret_hash, created_at, revoked) VALUES (?, ?, ?, 0)
                ON CONFLICT(device_id) DO UPDATE SET secret_hash = excluded.secret_hash, created_at = excluded.created_at, revoked = 0`)
      .run(deviceId, hash, this.now());
    this.verified.delete(deviceId);
    return { deviceId, secret };
  }

  /** Provisions many devices; hashing runs on libuv's thread pool, a few at a time. */
  async provisionMany(deviceIds: readonly string[], options: { rotate?: boolean } = {}): Promise<ProvisionedDevice[]> {
    // Refuse before creating any, so that no secret is issued and then lost with the error.
    if (!options.rotate) for (const id of deviceIds) if (this.has(id)) throw new CredentialExistsError(id);
    const out: ProvisionedDevice[] = [];
    const width = 8;
    for (let i = 0; i < deviceIds.length; i += width) {
      out.push(...(await Promise.all(deviceIds.slice(i, i + width).map((id) => this.provision(id, options)))));
    }
    return out;
  }

  revoke(deviceId: string): boolean {
    this.verified.delete(deviceId);
    return this.db.prepare('UPDATE device_credentials SET revoked = 1 WHERE device_id = ?').run(deviceId).changes > 0;
  }

  has(deviceId: string): boolean {
    return this.db.prepare('SELECT 1 FROM device_credentials WHERE device_id = ? AND revoked = 0').get(deviceId) !== undefined;
  }

  async verify(deviceId: string, secret: string): Promise<boolean> {
    const digest = createHash('sha256').update(secret).digest('hex');
    if (this.verified.get(deviceId) === digest) return true;
    const row = this.db.prepare('SELECT secret_hash FROM device_credentials WHERE device_id = ? AND revoked = 0').get(deviceId) as
      | { secret_hash: string }
      | undefined;
    if (!row) return false;
    const ok = await verifySecret(secret, row.secret_hash);
    if (ok) this.verified.set(deviceId, digest);
    return ok;
  }
}

export class CredentialExistsError extends FleetError {
  constructor(deviceId: string) {
    super('credentials-exist', `${deviceId} already has credentials; pass --rotate to issue new ones (the old secret stops working)`);
  }
}
