/**
 * Ed25519 signing keys (node:crypto). A key id is the sha256 (hex) of the raw 32-byte public key.
 * Private keys are PKCS#8 PEM files written 0600; public keys SPKI PEM files.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError, errorMessage } from '@fleet/protocol/errors';

export class KeyError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('key', message, options);
  }
}

export interface SigningKey {
  keyid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface PublicKey {
  keyid: string;
  publicKey: KeyObject;
}

/** Raw 32-byte Ed25519 public key, from the SPKI DER encoding's last 32 bytes. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex');
}

export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyid: keyIdOf(publicKey), privateKey, publicKey };
}

export function signingKeyFromPem(pem: string | Buffer): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new KeyError('not a PEM private key; generate one with `fleet firmware keygen`', { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new KeyError(`expected an Ed25519 key, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  }
  const publicKey = createPublicKey(privateKey);
  return { keyid: keyIdOf(publicKey), privateKey, publicKey };
}

export function publicKeyFromPem(pem: string | Buffer): PublicKey {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (err) {
    throw new KeyError('not a PEM public key', { cause: err });
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new KeyError(`expected an Ed25519 key, got ${publicKey.asymmetricKeyType ?? 'unknown'}`);
  }
  return { keyid: keyIdOf(publicKey), publicKey };
}

export async function loadSigningKey(path: string): Promise<SigningKey> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new KeyError(`cannot read signing key ${path}: ${errorMessage(err)}`, { cause: err });
  }
  return signingKeyFromPem(pem);
}

export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function publicKeyPem(key: PublicKey): string {
  return key.publicKey.export({ format: 'pem', type: 'spki' }).toString();
}

/**
 * Writes `<name>.key` (0600) and `<name>.pub` into dir. Refuses to overwrite an existing private key.
 */
export async function writeKeyPair(
  dir: string,
  name: string,
  key: SigningKey = generateSigningKey(),
): Promise<{ key: SigningKey; privatePath: string; publicPath: string }> {
  await mkdir(dir, { recursive: true });
  const privatePath = join(dir, `${name}.key`);
  const publicPath = join(dir, `${name}.pub`);
  try {
    await writeFile(privatePath, privateKeyPem(key), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyError(`${privatePath} already exists; choose another --name or directory`);
    }
    throw err;
  }
  await chmod(privatePath, 0o600);
  await writeFile(publicPath, publicKeyPem(key));
  return { key, privatePath, publicPath };
}
