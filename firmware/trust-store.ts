/**
 * A trust store: the public keys a device (or an operator's verify) accepts, and how many distinct
 * ones must sign. Several keys and a threshold let keys rotate without re-flashing devices: ship the
 * new key alongside the old, sign with both during the overlap, then drop the old one.
 *
 * On disk: a directory of `*.pub` PEM files and an optional `trust.json` ({"threshold": n}).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { parsePayload } from '@fleet/protocol/parse';
import { TrustPolicySchema } from '@fleet/protocol/signed';
import { publicKeyFromPem, type PublicKey } from './keys.js';

export interface TrustStore {
  keys: ReadonlyMap<string, PublicKey>;
  threshold: number;
}

export function createTrustStore(keys: readonly PublicKey[], threshold = 1): TrustStore {
  const map = new Map(keys.map((k) => [k.keyid, k] as const));
  if (threshold < 1 || threshold > map.size) {
    throw new ConfigError(`trust threshold ${threshold} needs between 1 and ${map.size} distinct keys`);
  }
  return { keys: map, threshold };
}

export async function loadTrustStore(dir: string): Promise<TrustStore> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new ConfigError(`cannot read trust store ${dir}: ${errorMessage(err)}`);
  }
  const keys: PublicKey[] = [];
  for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
    keys.push(publicKeyFromPem(await readFile(join(dir, name))));
  }
  if (keys.length === 0) {
    throw new ConfigError(`trust store ${dir} holds no *.pub keys; copy the signer's public key there`);
  }
  let threshold = 1;
  if (names.includes('trust.json')) {
    const parsed = parsePayload(TrustPolicySchema, await readFile(join(dir, 'trust.json')), `${dir}/trust.json`);
    if (!parsed.ok) throw new ConfigError(parsed.error.message);
    threshold = parsed.value.threshold;
  }
  return createTrustStore(keys, threshold);
}
