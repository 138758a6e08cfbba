/**
 * The coordinator's signing key: loaded from the configured path, or (development only) generated in
 * the data directory. The public half is written to `<dataDir>/trust/coordinator.pub`, a ready trust
 * store for agents on lab devices and the simulator. I/O shell (fs).
 *
 * Staging and production refuse a development key by what the key is, wherever its file was copied:
 * a development key's 32-byte Ed25519 seed is 16 random bytes followed by a 16-byte HMAC of them under
 * a fixed label, a mark that a key made any other way carries with probability 2^-128. Development
 * keys generated before the mark existed are listed by key id in `<dataDir>/keys/dev-keys.json`,
 * which production checks too.
 */
import { createHmac, createPrivateKey, createPublicKey, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '@fleet/protocol/errors';
import { keyIdOf, loadSigningKey, publicKeyPem, writeKeyPair, type SigningKey } from '@fleet/firmware/keys';
import { devSigningKeyPath, type CoordinatorConfig } from './config.js';

const DEV_KEYS_FILE = 'dev-keys.json';
/** The DER header of an Ed25519 PKCS#8 private key; the 32-byte seed follows it (RFC 8410). */
const ED25519_PKCS8_HEADER = Buffer.from('302e020100300506032b657004220420', 'hex');
const DEV_KEY_LABEL = 'fleet development signing key v1';

function devMark(head: Buffer): Buffer {
  return createHmac('sha256', DEV_KEY_LABEL).update(head).digest().subarray(0, 16);
}

/** A fresh Ed25519 key whose seed carries the development mark. */
export function generateDevelopmentKey(): SigningKey {
  const head = randomBytes(16);
  const der = Buffer.concat([ED25519_PKCS8_HEADER, head, devMark(head)]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  return { keyid: keyIdOf(publicKey), privateKey, publicKey };
}

/** True when the key's seed carries the development mark (generateDevelopmentKey made it). */
export function isDevelopmentKey(key: SigningKey): boolean {
  const der = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  if (der.length !== ED25519_PKCS8_HEADER.length + 32 || !der.subarray(0, ED25519_PKCS8_HEADER.length).equals(ED25519_PKCS8_HEADER)) return false;
  const seed = der.subarray(ED25519_PKCS8_HEADER.length);
  return timingSafeEqual(seed.subarray(16), devMark(seed.subarray(0, 16)));
}

async function devKeyIds(dataDir: string): Promise<string[]> {
  try {
    return JSON.parse(await readFile(join(dataDir, 'keys', DEV_KEYS_FILE), 'utf8')) as string[];
  } catch {
    return [];
  }
}

export interface LoadedSigningKey {
  key: SigningKey;
  path: string;
  development: boolean;
  /** Directory with the public key, usable as an agent trust store. */
  trustDir: string;
}

export async function loadCoordinatorKey(config: CoordinatorConfig): Promise<LoadedSigningKey> {
  const devPath = devSigningKeyPath(config.dataDir);
  let key: SigningKey;
  let path: string;
  let development = false;
  if (config.signingKeyPath) {
    path = config.signingKeyPath;
    key = await loadSigningKey(path);
    if (config.env !== 'development' && (isDevelopmentKey(key) || (await devKeyIds(config.dataDir)).includes(key.keyid))) {
      throw new ConfigError(
        `${config.env} refuses the development signing key ${key.keyid.slice(0, 16)}… (${path}), which a development coordinator generated; make a release key with \`fleet firmware keygen --out <dir>\` and set FLEET_SIGNING_KEY to it`,
      );
    }
  } else if (config.env === 'development') {
    path = devPath;
    development = true;
    if (existsSync(devPath)) {
      key = await loadSigningKey(devPath);
    } else {
      ({ key } = await writeKeyPair(join(config.dataDir, 'keys'), 'dev-signing', generateDevelopmentKey()));
      const ids = await devKeyIds(config.dataDir);
      await writeFile(join(config.dataDir, 'keys', DEV_KEYS_FILE), JSON.stringify([...ids, key.keyid]) + '\n');
    }
  } else {
    throw new ConfigError(`${config.env} needs a signing key: set FLEET_SIGNING_KEY`);
  }
  const trustDir = join(config.dataDir, 'trust');
  await mkdir(trustDir, { recursive: true });
  await writeFile(join(trustDir, 'coordinator.pub'), publicKeyPem(key));
  return { key, path, development, trustDir };
}
