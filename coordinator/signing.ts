/**
 * The coordinator's signing key: loaded from the configured path, or (development only) generated in
 * the data directory. The public half is written to `<dataDir>/trust/coordinator.pub`, a ready trust
 * store for agents on lab devices and the simulator. Staging and production refuse any key this code
 * ever generated as a development key. I/O shell (fs).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../protocol/errors.js';
import { loadSigningKey, publicKeyPem, writeKeyPair, type SigningKey } from '../firmware/keys.js';
import { devSigningKeyPath, type CoordinatorConfig } from './config.js';

const DEV_KEYS_FILE = 'dev-keys.json';

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
    if (config.env !== 'development' && (await devKeyIds(config.dataDir)).includes(key.keyid)) {
      throw new ConfigError(`${config.env} refuses the development signing key (${key.keyid}); use a key made with \`fleet firmware keygen\``);
    }
  } else if (config.env === 'development') {
    path = devPath;
    development = true;
    if (existsSync(devPath)) {
      key = await loadSigningKey(devPath);
    } else {
      ({ key } = await writeKeyPair(join(config.dataDir, 'keys'), 'dev-signing'));
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
