/** The agent config: defaults, durations, path resolution, and one clear error per bad field. */
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokerUrls, loadAgentConfig, parseAgentConfig } from '../../agent/config.js';
import { brokerClientOptions, downloadCredentials } from '../../agent/agent-defaults.js';
import { ConfigError, errorMessage } from '../../protocol/errors.js';
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
    return errorMessage(err);
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

  it('takes several broker URLs and spreads a fleet evenly over them, each device always starting at the same', async () => {
    const urls = ['mqtt://10.0.0.1:1883', 'mqtt://10.0.0.2:1883', 'mqtt://10.0.0.3'];
    const starts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const order = brokerUrls({ url: urls }, `pi-${i}`);
      expect([...order].sort()).toEqual([...urls].sort());
      // A rotation of the list: the next node after a failure is the next in the operator's order.
      expect(order.join(' ')).toBe([...urls.slice(urls.indexOf(order[0]!)), ...urls.slice(0, urls.indexOf(order[0]!))].join(' '));
      expect(brokerUrls({ url: urls }, `pi-${i}`)).toEqual(order);
      starts.set(order[0]!, (starts.get(order[0]!) ?? 0) + 1);
    }
    for (const url of urls) expect(starts.get(url)).toBeGreaterThan(900);
    expect(brokerUrls({ url: urls[0]! }, 'pi-1')).toEqual([urls[0]]);
    // mqtt.js gets the order as its `servers` (default ports filled in), the device's own node first.
    const cfg = parseAgentConfig({ ...minimal, broker: { url: urls, username: 'pi-1', password: 'x' } });
    const options = await brokerClientOptions(cfg);
    const order = brokerUrls(cfg.broker, 'pi-1');
    expect(options.servers?.map((s) => `${s.protocol}://${s.host}:${s.port}`)).toEqual(order.map((u) => (u.endsWith(':1883') ? u : `${u}:1883`)));
    expect(`mqtt://${options.host}${options.port ? `:${options.port}` : ''}`).toBe(order[0]);
    expect((await downloadCredentials(cfg)).plainHttpCredentials).toBe(true);
    const mixed = parseAgentConfig({ ...minimal, broker: { url: [urls[0], 'mqtts://10.0.0.2'], username: 'pi-1', password: 'x' } });
    expect((await downloadCredentials(mixed)).plainHttpCredentials).toBe(false);
    expect(errorOf({ ...minimal, broker: { url: [] } })).toMatch(/broker\.url/);
    expect(errorOf({ ...minimal, broker: { url: ['mqtt://a', 'http://b'] } })).toMatch(/broker\.url\.1.*mqtt:\/\//);
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
      // A settings object that skipped parseAgentConfig still gets its backend's own check.
      const err = await createSlotBackend({ kind: 'tryboot' } as unknown as Parameters<typeof createSlotBackend>[0], pino({ level: 'silent' })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect(errorMessage(err)).toMatch(/slots/);
      await expect(createSlotBackend({ kind: 'memory' }, pino({ level: 'silent' }))).rejects.toThrow(/host injects the backend/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('hardware slot backend settings in agent.json', () => {
  const example = (kind: string): Record<string, unknown> =>
    JSON.parse(readFileSync(new URL(`../../agent/examples/agent-${kind}.json`, import.meta.url), 'utf8')) as Record<string, unknown>;

  it.each(['uboot', 'rauc', 'tryboot'])('the shipped %s example is valid, with the backend defaults filled in', (kind) => {
    const c = parseAgentConfig(example(kind));
    expect(c.slots.kind).toBe(kind);
    if (c.slots.kind === 'uboot') expect(c.slots).toMatchObject({ scheme: 'bootcount', fwPrintenv: 'fw_printenv', slots: { A: { device: '/dev/mmcblk0p2' } } });
    if (c.slots.kind === 'rauc') expect(c.slots).toMatchObject({ transport: 'dbus', bus: 'system', rebootCommand: ['reboot'] });
    if (c.slots.kind === 'tryboot') expect(c.slots).toMatchObject({ bootDir: '/boot/firmware', trybootRebootCommand: ['reboot', '0 tryboot'] });
  });

  it.each([
    ['uboot', { scheme: 'grub' }, 'slots.scheme'],
    ['uboot', { slots: { A: { device: '/dev/sda2' } } }, 'slots.slots.B'],
    ['uboot', { slots: { A: { device: '/dev/sda2' }, B: { device: '/dev/sda2' } } }, 'slots.A.device and slots.B.device must differ'],
    ['rauc', { transport: 'carrier-pigeon' }, 'slots.transport'],
    ['rauc', { installTimeoutMs: -1 }, 'slots.installTimeoutMs'],
    ['tryboot', { slots: { A: { device: '/dev/mmcblk0p2', partition: 2 }, B: { device: '/dev/mmcblk0p3', partition: 2 } } }, 'partition must differ'],
    ['tryboot', { rebootCommand: [] }, 'slots.rebootCommand'],
  ])('%s: a bad setting %j is refused at load, naming %s', (kind, patch, field) => {
    const e = example(kind);
    expect(errorOf({ ...e, slots: { ...(e['slots'] as object), ...patch } })).toContain(field);
  });

  it('a hardware backend with its required settings missing is refused at load', () => {
    expect(errorOf({ ...minimal, slots: { kind: 'tryboot' } })).toMatch(/slots\.slots/);
    expect(errorOf({ ...minimal, slots: { kind: 'uboot', scheme: 'bootcount' } })).toMatch(/slots\.slots/);
  });

  it('resolves relative backend paths against the config file; bare program names stay for PATH', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-agent-cfg-'));
    try {
      const write = async (name: string, slots: Record<string, unknown>): Promise<string> => {
        const path = join(dir, name);
        await writeFile(path, JSON.stringify({ ...minimal, slots }));
        return path;
      };
      const uboot = await loadAgentConfig(
        await write('uboot.json', {
          kind: 'uboot',
          fwEnvConfig: 'env/fw_env.config',
          fwPrintenv: './bin/fw_printenv',
          fwSetenv: 'fw_setenv',
          procCmdline: '/proc/cmdline',
          slots: { A: { device: 'img/a.img' }, B: { device: 'img/b.img' } },
        }),
      );
      expect(uboot.slots).toMatchObject({
        fwEnvConfig: join(dir, 'env/fw_env.config'),
        fwPrintenv: join(dir, 'bin/fw_printenv'),
        fwSetenv: 'fw_setenv',
        procCmdline: '/proc/cmdline',
        slots: { A: { device: join(dir, 'img/a.img') }, B: { device: join(dir, 'img/b.img') } },
      });
      const rauc = await loadAgentConfig(await write('rauc.json', { kind: 'rauc', rauc: 'rauc', systemConf: 'rauc/system.conf', stateFile: 'state/trial.json' }));
      expect(rauc.slots).toMatchObject({ rauc: 'rauc', systemConf: join(dir, 'rauc/system.conf'), stateFile: join(dir, 'state/trial.json') });
      const tryboot = await loadAgentConfig(
        await write('tryboot.json', {
          kind: 'tryboot',
          bootDir: 'boot',
          deviceTreeRoot: 'dt',
          armedMarker: 'run/armed',
          slots: { A: { device: 'p2.img' }, B: { device: 'p3.img' } },
        }),
      );
      expect(tryboot.slots).toMatchObject({
        bootDir: join(dir, 'boot'),
        // Relative to bootDir, not to the config file.
        autobootFile: 'autoboot.txt',
        deviceTreeRoot: join(dir, 'dt'),
        armedMarker: join(dir, 'run/armed'),
        slots: { A: { device: join(dir, 'p2.img') }, B: { device: join(dir, 'p3.img') } },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
