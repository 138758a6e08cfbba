/** The agent config: defaults, durations, path resolution, and one clear error per bad field. */
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, parseAgentConfig } from '../../agent/config.js';
import { ConfigError } from '../../protocol/errors.js';
import { readFileSync } from 'node:fs';

const minimal = {
  deviceId: 'pi-1',
  hardwareModel: 'rpi4',
  firmwareVersion: '1.0.0',
  broker: { url: 'mqtt://127.0.0.1:1883' },
  trustStoreDir: '/etc/fleet/trust',
  dataDir: '/var/lib/fleet',
  slots: { kind: 'file', dir: '/var/lib/fleet/slots' },
};

function errorOf(value: unknown): string {
  try {
    parseAgentConfig(value);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('agent config', () => {
  it('fills in defaults for a minimal config', () => {
    const c = parseAgentConfig(minimal);
    expect(c.telemetry.interval).toBe(60_000);
    expect(c.health).toMatchObject({ brokerDeadline: 120_000, trialWindow: 600_000, checks: [] });
    expect(c.download).toMatchObject({ maxAttempts: 6, retryBase: 5_000 });
    expect(c.broker).toMatchObject({ keepalive: 30_000, reconnectMin: 1_000, reconnectMax: 60_000, retainPresence: false });
    expect(c.tags).toEqual([]);
  });

  it('accepts durations as strings', () => {
    const c = parseAgentConfig({ ...minimal, telemetry: { interval: '15s' }, health: { trialWindow: '2m', checks: [{ name: 'x', command: 'true', timeout: '500ms' }] } });
    expect(c.telemetry.interval).toBe(15_000);
    expect(c.health.trialWindow).toBe(120_000);
    expect(c.health.checks[0]!.timeout).toBe(500);
  });

  it.each([
    ['deviceId', { deviceId: 'bad/id' }, 'deviceId: device id must be'],
    ['firmwareVersion', { firmwareVersion: 'one' }, 'firmwareVersion: must be a semantic version'],
    ['broker.url', { broker: { url: 'http://x' } }, 'broker.url: must be an mqtt://'],
    ['slots.kind', { slots: { kind: 'floppy' } }, 'slots.kind'],
    ['telemetry.interval', { telemetry: { interval: 'soon' } }, 'telemetry.interval: "soon" is not a duration'],
    ['health check name', { health: { checks: [{ name: 'bad name', command: 'true' }] } }, 'health.checks.0.name'],
    ['logPattern', { telemetry: { logPattern: '(' } }, 'telemetry.logPattern'],
    ['password twice', { broker: { url: 'mqtt://h', password: 'a', passwordFile: '/p' } }, 'password or passwordFile'],
    ['cert without key', { broker: { url: 'mqtts://h', certFile: '/c' } }, 'certFile and keyFile go together'],
  ])('names the bad field: %s', (_name, patch, message) => {
    expect(errorOf({ ...minimal, ...patch })).toContain(message);
  });

  it('lists every bad field at once', () => {
    const msg = errorOf({ ...minimal, deviceId: '', dataDir: 3, hardwareModel: undefined });
    expect(msg).toContain('deviceId');
    expect(msg).toContain('dataDir');
    expect(msg).toContain('hardwareModel');
  });

  it('loads a file and resolves relative paths against it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-agent-config-'));
    try {
      const path = join(dir, 'agent.json');
      await writeFile(path, JSON.stringify({ ...minimal, trustStoreDir: 'trust', dataDir: './data', slots: { kind: 'file', dir: 'slots' } }));
      const c = await loadAgentConfig(path);
      expect(c.trustStoreDir).toBe(join(dir, 'trust'));
      expect(c.dataDir).toBe(join(dir, 'data'));
      expect(c.slots).toMatchObject({ kind: 'file', dir: join(dir, 'slots') });
      await writeFile(path, '{ not json');
      await expect(loadAgentConfig(path)).rejects.toThrow(/is not JSON/);
      await expect(loadAgentConfig(join(dir, 'missing.json'))).rejects.toThrow(/cannot read agent config/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the shipped example config is valid', () => {
    const example = JSON.parse(readFileSync(new URL('../../agent/examples/agent.json', import.meta.url), 'utf8')) as unknown;
    const c = parseAgentConfig(example);
    expect(c.deviceId).toBe('pi-0001');
    expect(c.health.checks).toHaveLength(2);
  });
});

describe('slot backend from config', () => {
  it('builds the file backend, and refuses a hardware backend config with the bad field named', async () => {
    const { createSlotBackend } = await import('../../agent/slots/create-slot-backend.js');
    const pino = (await import('pino')).default;
    const dir = await mkdtemp(join(tmpdir(), 'fleet-agent-slots-'));
    try {
      const file = await createSlotBackend({ kind: 'file', dir, trialBoots: 1 }, pino({ level: 'silent' }));
      expect(file.kind).toBe('file');
      expect((await file.bootState()).booted).toBe('A');
      const err = await createSlotBackend({ kind: 'tryboot' }, pino({ level: 'silent' })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/slots/);
      await expect(createSlotBackend({ kind: 'memory' }, pino({ level: 'silent' }))).rejects.toThrow(/host injects the backend/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
