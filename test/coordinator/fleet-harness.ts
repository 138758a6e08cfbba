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
import type { Clock } from '../../protocol/clock.js';
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

/** Where the fleet connects and how it gets credentials: an in-process coordinator or one over its API. */
export interface FleetTarget {
  mqttUrl: string;
  trustDir: string;
  provision(ids: string[]): Promise<{ deviceId: string; secret: string }[]>;
  /** Which of `ids` the registry knows online with a version (from their hello). */
  registered(ids: readonly string[]): Promise<number>;
}

export function inProcess(c: Coordinator): FleetTarget {
  return {
    mqttUrl: c.mqttUrl,
    trustDir: c.trustDir,
    provision: (ids) => c.provisionDevices(ids, { hardwareModel: 'rpi4' }),
    registered: (ids) => Promise.resolve(ids.filter((id) => c.device(id)?.online === true && c.device(id)?.firmwareVersion !== undefined).length),
  };
}

export function overApi(a: { mqttUrl: string; trustDir: string; httpUrl: string; token: string }): FleetTarget {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${a.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${a.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as T;
  };
  return {
    mqttUrl: a.mqttUrl,
    trustDir: a.trustDir,
    provision: async (ids) => (await call<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: 'rpi4' })).devices,
    registered: async (ids) => {
      const online = (await call<{ devices: { deviceId: string; firmwareVersion: string | null }[] }>('GET', '/v1/devices?online=true&limit=10000')).devices;
      return online.filter((d) => ids.includes(d.deviceId) && d.firmwareVersion !== null).length;
    },
  };
}

/** Starts `n` devices running 1.0.0; `bootOutcome` decides trial boots (default: every boot comes up). */
export async function startFleet(
  c: Coordinator | FleetTarget,
  dir: string,
  n: number,
  options: { bootOutcome?: (id: string, boot: BootState) => BootOutcome; telemetryMs?: number; clock?: Clock } = {},
): Promise<Fleet> {
  const target = 'provision' in c ? c : inProcess(c);
  const ids = Array.from({ length: n }, () => uniqueId('d'));
  const creds = await target.provision(ids);
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
        broker: { url: target.mqttUrl, username: deviceId, password: secret, reconnectMin: 50, reconnectMax: 400 },
        trustStoreDir: target.trustDir,
        dataDir: join(base, 'data'),
        slots: { kind: 'file', dir: join(base, 'slots') },
        telemetry: { interval: options.telemetryMs ?? 3_600_000 },
        health: { brokerDeadline: 5_000, trialWindow: 20_000 },
        // Patient enough to ride out a coordinator restart, as real agents are.
        download: { retryBase: 50, retryMax: 1_000, maxAttempts: 40, idleTimeout: 5_000 },
      });
      const slots = await FileSlotBackend.create({ dir: join(base, 'slots'), factoryImage: factory });
      const outcome = options.bootOutcome;
      const dev = new SimulatedDevice({
        config,
        slots,
        logger: silentLogger,
        ...(options.clock ? { clock: options.clock } : {}),
        ...(outcome ? { bootOutcome: (boot: BootState) => outcome(deviceId, boot) } : {}),
      });
      await dev.start();
      devices.push({ id: deviceId, dev, slots, secret });
    }),
  );
  await waitFor(() => devices.every((d) => d.dev.agent?.connected === true), 'every agent connected');
  await waitFor(async () => (await target.registered(ids)) === n, 'every hello registered');
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
