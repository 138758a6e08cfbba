/**
 * What the coordinator keeps in its data directory besides the database: the ports it last bound
 * (`ports.json`, so `--mqtt-port auto` restarts on the same port devices and manifests point at), the
 * development admin file (`admin.json`: URL and operator token for a CLI on the same machine), and
 * the trust store it checks offline-signed manifests against. The lock is data-dir-lock.ts. I/O shell (fs).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { SigningKey } from '@fleet/firmware/keys';
import { createTrustStore, loadTrustStore, type TrustStore } from '@fleet/firmware/trust-store';
import { adminFilePath, type ListenPort } from './config.js';

const PortNumberSchema = z.number().int().min(1).max(65535);
const PortsFileSchema = z.object({ mqtt: PortNumberSchema.optional(), http: PortNumberSchema.optional() });
export interface PortsFile {
  mqtt?: number | undefined;
  http?: number | undefined;
}

/**
 * The port to listen on: a configured number as is (0 = any free port), or for `auto` the port the
 * previous run bound (devices and manifests point at it), else any free port.
 */
export function choosePort(configured: ListenPort, previous: number | undefined): number {
  if (configured !== 'auto') return configured;
  return previous ?? 0;
}

export function portOf(url: string): number | undefined {
  const m = /:(\d+)$/.exec(url);
  return m ? Number(m[1]) : undefined;
}

/** The ports the previous run bound; empty when the file is missing or not what we write. */
export function readPorts(dataDir: string): PortsFile {
  try {
    const parsed = PortsFileSchema.safeParse(JSON.parse(readFileSync(join(dataDir, 'ports.json'), 'utf8')));
    return parsed.success ? parsed.data : {};
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
