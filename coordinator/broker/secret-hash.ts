/**
 * The stored forms of secrets, and their checks (docs/credential-hashing.md):
 * - `sha256$<digest, base64>`: a device secret the coordinator generated (24 random bytes). One
 *   SHA-256, compared in constant time: a secret of 192 random bits needs no slow hash to stay out of
 *   reach of whoever reads a leaked store, and its check costs microseconds, not a thread-pool run.
 * - `scrypt$logN$r$p$salt$hash`: a password a person chose (users), and device secrets stored before
 *   the fast form (checked, then replaced by the credential store). Cost `logN`, production >= 14.
 * Pure apart from node:crypto.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** log2 of scrypt's N. 14 (16,384) is the production floor; tests and the simulator may go lower. */
export const DEFAULT_SCRYPT_LOG_N = 14;

/** Random bytes in a device secret: 192 bits, as base64url (32 characters). */
const DEVICE_SECRET_BYTES = 24;
const GENERATED_SECRET = /^[A-Za-z0-9_-]{32}$/;
const FAST_PREFIX = 'sha256$';

/** Which form a stored hash has; `unknown` never verifies. */
export type StoredForm = 'sha256' | 'scrypt' | 'unknown';

export function storedForm(stored: string): StoredForm {
  if (stored.startsWith(FAST_PREFIX)) return 'sha256';
  if (stored.startsWith('scrypt$')) return 'scrypt';
  return 'unknown';
}

/** A new device secret: 24 random bytes, base64url. */
export function newDeviceSecret(): string {
  return randomBytes(DEVICE_SECRET_BYTES).toString('base64url');
}

/**
 * True when `secret` has the shape `newDeviceSecret` gives (32 base64url characters). Only such a
 * secret is stored in the fast form: one a person chose stays scrypt.
 */
export function isGeneratedSecret(secret: string): boolean {
  return GENERATED_SECRET.test(secret);
}

function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** `sha256$<base64>` of a generated device secret; throws for any other secret (a person's: use scrypt). */
export function fastHash(secret: string): string {
  if (!isGeneratedSecret(secret)) throw new RangeError('only a generated device secret (32 base64url characters) may be stored as sha256');
  return `${FAST_PREFIX}${sha256(secret).toString('base64')}`;
}

/**
 * True when `stored` is the fast form of `secret`. The digests are compared in constant time; the
 * secret presented is hashed whatever its length, so its shape changes nothing but the answer.
 */
export function verifyFast(secret: string, stored: string): boolean {
  if (!stored.startsWith(FAST_PREFIX)) return false;
  const encoded = stored.slice(FAST_PREFIX.length);
  const expected = Buffer.from(encoded, 'base64');
  const actual = sha256(secret);
  // Node's base64 decoding skips what it cannot read: only the exact encoding of a digest counts.
  if (expected.length !== actual.length || expected.toString('base64') !== encoded) return decoyCompare(actual);
  return timingSafeEqual(actual, expected);
}

/** A digest no secret is known to have (decoyCheck). */
const DECOY_DIGEST = randomBytes(32);

/**
 * The same work as `verifyFast` against a digest no secret has: what an unknown device's login
 * costs, so that its refusal takes as long as a wrong secret's.
 */
export function decoyCheck(secret: string): false {
  return decoyCompare(sha256(secret));
}

function decoyCompare(digest: Buffer): false {
  timingSafeEqual(digest, DECOY_DIGEST);
  return false;
}

function scryptAsync(secret: string, salt: Buffer, logN: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, 32, { N, r: 8, p: 1, maxmem: 256 * N * 8 + 1024 * 1024 }, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** `scrypt$logN$8$1$salt$hash` of a password (runs on libuv's thread pool). */
export async function scryptHash(secret: string, logN = DEFAULT_SCRYPT_LOG_N): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, logN);
  return `scrypt$${logN}$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** True when `stored` is a scrypt hash of `secret` (at the cost it names, 1–20). */
export async function verifyScrypt(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const logN = Number(parts[1]);
  if (!Number.isInteger(logN) || logN < 1 || logN > 20) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await scryptAsync(secret, salt, logN);
  return key.length === expected.length && timingSafeEqual(key, expected);
}
