/**
 * What the coordinator keeps in its data directory besides the database: the ports it last bound
 * (`ports.json`, so `--mqtt-port 0` restarts on the same port devices and manifests point at), the
 * development admin file (`admin.json`: URL and operator token for a CLI on the same machine), and
 * the trust store it checks offline-signed manifests against. I/O shell (fs).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { SigningKey } from '../firmware/keys.js';
import { createTrustStore, loadTrustStore, type TrustStore } from '../firmware/trust-store.js';
import { adminFilePath } from './config.js';

export interface PortsFile {
  mqtt?: number | undefined;
  http?: number | undefined;
}

/** A configured port, or for 0 the port the previous run used (devices and manifests point at it). */
export function choosePort(configured: number, previous: number | undefined): number {
  return configured === 0 && previous !== undefined ? previous : configured;
}

export function portOf(url: string): number | undefined {
  const m = /:(\d+)$/.exec(url);
  return m ? Number(m[1]) : undefined;
}

export function readPorts(dataDir: string): PortsFile {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'ports.json'), 'utf8')) as PortsFile;
  } catch {
    return {};
  }
}

export function writePorts(dataDir: string, ports: PortsFile): void {
  writeFileSync(join(dataDir, 'ports.json'), JSON.stringify(ports) + '\n');
}

export interface AdminFile {
  url: string;
  token: string;
  mqttUrl?: string;
}

export function readAdminFile(dataDir: string): AdminFile | undefined {
  try {
    return JSON.parse(readFileSync(adminFilePath(dataDir), 'utf8')) as AdminFile;
  } catch {
    return undefined;
  }
}

export async function writeAdminFile(dataDir: string, file: AdminFile): Promise<void> {
  const path = adminFilePath(dataDir);
  writeFileSync(path, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  await chmod(path, 0o600);
}

/** The coordinator's own key plus any operator keys placed in the trust directory. */
export async function coordinatorTrust(key: SigningKey, trustDir: string): Promise<TrustStore> {
  try {
    const loaded = await loadTrustStore(trustDir);
    if (loaded.keys.has(key.keyid)) return loaded;
    return createTrustStore([...loaded.keys.values(), { keyid: key.keyid, publicKey: key.publicKey }], loaded.threshold);
  } catch {
    return createTrustStore([{ keyid: key.keyid, publicKey: key.publicKey }]);
  }
}
