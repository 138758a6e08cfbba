/**
 * Real agents (agent/index.ts SimulatedDevice on the file slot backend) against a real coordinator on
 * 127.0.0.1: provisioned credentials, the coordinator's trust directory, fresh per-device dirs.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FileSlotBackend, SimulatedDevice, parseAgentConfig, type BootOutcome } from '../../agent/index.js';
import type { BootState } from '../../agent/index.js';
import type { Coordinator } from '../../coordinator/index.js';
import { silentLogger, uniqueId, waitFor } from './helpers.js';

export interface FleetDevice {
  id: string;
  dev: SimulatedDevice;
  slots: FileSlotBackend;
  secret: string;
}

export interface Fleet {
  devices: FleetDevice[];
  /** Restarts each agent against a coordinator (same URL after a restart). */
  stop(): Promise<void>;
}

export const IMAGE_SIZE = 32 * 1024;

export function firmwareImage(version: string): Buffer {
  return Buffer.alloc(IMAGE_SIZE, `image-${version}`);
}

export async function uploadImage(c: Coordinator, version: string, hardware = ['rpi4']): Promise<void> {
  await c.uploadFirmware({ image: Readable.from([firmwareImage(version)]), version, hardware });
}

/** Starts `n` devices running 1.0.0; `bootOutcome` decides trial boots (default: every boot comes up). */
export async function startFleet(
  c: Coordinator,
  dir: string,
  n: number,
  options: { bootOutcome?: (id: string, boot: BootState) => BootOutcome; telemetryMs?: number } = {},
): Promise<Fleet> {
  const ids = Array.from({ length: n }, () => uniqueId('d'));
  const creds = await c.provisionDevices(ids, { hardwareModel: 'rpi4' });
  const factory = join(dir, 'factory.img');
  await writeFile(factory, firmwareImage('1.0.0'));
  const devices: FleetDevice[] = [];
  await Promise.all(
    creds.map(async ({ deviceId, secret }) => {
      const base = join(dir, 'devices', deviceId);
      await mkdir(base, { recursive: true });
      const config = parseAgentConfig({
        deviceId,
        hardwareModel: 'rpi4',
        firmwareVersion: '1.0.0',
        broker: { url: c.mqttUrl, username: deviceId, password: secret, reconnectMin: 50, reconnectMax: 400 },
        trustStoreDir: c.trustDir,
        dataDir: join(base, 'data'),
        slots: { kind: 'file', dir: join(base, 'slots') },
        telemetry: { interval: options.telemetryMs ?? 3_600_000 },
        health: { brokerDeadline: 5_000, trialWindow: 20_000 },
        download: { retryBase: 20, retryMax: 200, maxAttempts: 6, idleTimeout: 5_000 },
      });
      const slots = await FileSlotBackend.create({ dir: join(base, 'slots'), factoryImage: factory });
      const outcome = options.bootOutcome;
      const dev = new SimulatedDevice({
        config,
        slots,
        logger: silentLogger,
        ...(outcome ? { bootOutcome: (boot: BootState) => outcome(deviceId, boot) } : {}),
      });
      await dev.start();
      devices.push({ id: deviceId, dev, slots, secret });
    }),
  );
  await waitFor(() => devices.every((d) => d.dev.agent?.connected === true), 'every agent connected');
  await waitFor(() => c.registry.list({ online: true }).length === n && c.registry.list().every((d) => d.firmwareVersion !== undefined), 'every hello registered');
  return {
    devices,
    stop: async () => {
      await Promise.all(devices.map((d) => d.dev.stop()));
    },
  };
}

/** Fast waves for tests: short soak, generous deadline, gates that proceed on small waves. */
export function fastWaves(percents: number[], soakMs = 300): { percent: number; soakMs: number; deadlineMs: number; minDevicesReporting: number }[] {
  return percents.map((percent) => ({ percent, soakMs, deadlineMs: 30_000, minDevicesReporting: 1 }));
}
