/**
 * Hostile: replayed manifests, replayed commands and the security floor, against the real thing —
 * `fleet coordinator start` and two `fleet agent start` daemons as child processes, a real Mosquitto
 * on loopback, and an attacker on that broker (a rogue or compromised broker) that captures every
 * signed manifest and command the coordinator sends and replays them later. Each replay and each
 * attempt to cross the floor must be refused, counted, logged with the offender's identity (the
 * device, the deployment id or command id it came under, what the document claims), and nothing may
 * be installed.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { Mosquitto, hasMosquitto } from '../support/mosquitto.js';
import { writeKeyPair, loadSigningKey, type SigningKey } from '../../firmware/keys.js';
import { buildCommand, signCommand } from '../../firmware/manifest.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import type { RolloutMessage, StatusMessage, TelemetryMessage } from '../../protocol/messages.js';
import { waitFor as waitForShared } from '../support/wait-for.js';

const MODEL = 'rpi4';
const SLOW = 120_000;

/** Updates through real agent processes take longer than most waits here: a minute by default. */
const waitFor = <T>(check: () => T | Promise<T>, what: string, timeoutMs = 60_000): Promise<NonNullable<T>> => waitForShared(check, what, timeoutMs);

interface Device {
  id: string;
  slotsDir: string;
  process: RunningProcess;
}

interface Bootloader {
  primary: string;
  booted: string;
  slots: Record<string, { sha256: string } | null>;
}

describe.skipIf(!hasMosquitto)('hostile: replayed manifests and commands, and the security floor', () => {
  let dir: string;
  let broker: Mosquitto;
  let coordinator: RunningProcess;
  let attacker: MqttClient;
  let url: string;
  let token: string;
  let release: { key: SigningKey; keyPath: string };
  const devices: Device[] = [];
  const captured: { topic: string; payload: Buffer }[] = [];
  const others: RunningProcess[] = [];

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  /** Runs a `fleet` command against the coordinator and returns its output (it must succeed). */
  const fleet = async (...args: string[]): Promise<string> => {
    const p = spawnFleet(args, { env: { FLEET_URL: url, FLEET_TOKEN: token } });
    others.push(p);
    const exit = await p.exited;
    expect(exit.code, `fleet ${args.join(' ')}:\n${p.output()}`).toBe(0);
    return p.output();
  };
  const statuses = (deviceId: string): StatusMessage[] =>
    captured.filter((m) => m.topic === deviceTopic(deviceId, 'status')).map((m) => JSON.parse(m.payload.toString('utf8')) as StatusMessage);
  const telemetry = (deviceId: string): TelemetryMessage[] =>
    captured.filter((m) => m.topic === deviceTopic(deviceId, 'telemetry')).map((m) => JSON.parse(m.payload.toString('utf8')) as TelemetryMessage);
  const bootloader = async (d: Device): Promise<Bootloader> => JSON.parse(await readFile(join(d.slotsDir, 'bootloader.json'), 'utf8')) as Bootloader;
  const registry = async (): Promise<Map<string, { firmwareVersion: string | null; securityFloor: number }>> => {
    const res = await api<{ devices: { deviceId: string; firmwareVersion: string | null; securityFloor: number }[] }>('GET', '/v1/devices');
    return new Map(res.devices.map((d) => [d.deviceId, d]));
  };
  const allOn = async (version: string): Promise<boolean> => {
    const r = await registry();
    return devices.every((d) => r.get(d.id)?.firmwareVersion === version);
  };
  const metrics = async (): Promise<Record<string, number>> => (await api<{ counters: Record<string, number> }>('GET', '/v1/metrics')).counters;
  const deployment = (id: string) => api<{ id: string; phase: string; rollback?: { exposed: number; confirmed: number; unreachable: number; refused?: number } }>('GET', `/v1/deployments/${id}`);
  /** Uploads an image signed by the coordinator and rolls it out to every device in one wave. */
  const release100 = async (version: string, securityVersion: number, extra: string[] = []): Promise<{ id: string; output: string }> => {
    const image = join(dir, `fw-${version}.img`);
    await writeFile(image, Buffer.alloc(48 * 1024, `firmware ${version}`));
    await fleet('firmware', 'upload', image, '--version', version, '--hardware', MODEL, '--security-version', String(securityVersion), ...extra);
    const output = await fleet('deploy', 'create', '--firmware', version, '--waves', '100', '--soak', '1s', '--min-devices', '1', '--json');
    return { id: (JSON.parse(output.slice(output.indexOf('{'))) as { id: string }).id, output };
  };
  const capturedRollout = (deploymentId: string): RolloutMessage => {
    const m = captured.find((x) => x.topic.startsWith('fleet/v1/rollout/') && x.payload.length > 0 && (JSON.parse(x.payload.toString('utf8')) as { deploymentId?: string; kind: string }).deploymentId === deploymentId && (JSON.parse(x.payload.toString('utf8')) as { kind: string }).kind === 'rollout');
    if (!m) throw new Error(`no rollout of ${deploymentId} captured`);
    return JSON.parse(m.payload.toString('utf8')) as RolloutMessage;
  };
  const replayRollout = async (d: Device, message: RolloutMessage, deploymentId: string): Promise<void> => {
    await attacker.publishAsync(rolloutTopic(MODEL, bucketOf(d.id)), Buffer.from(JSON.stringify({ ...message, deploymentId })), { qos: 1, retain: true });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-hostile-'));
    broker = await Mosquitto.start({ allowAnonymous: true });
    // An operator's offline release key, trusted by the coordinator and by the devices.
    const dataDir = join(dir, 'coordinator');
    await mkdir(join(dataDir, 'trust'), { recursive: true });
    const pair = await writeKeyPair(join(dir, 'keys'), 'release');
    release = { key: await loadSigningKey(pair.privatePath), keyPath: pair.privatePath };
    await writeFile(join(dataDir, 'trust', 'release.pub'), await readFile(pair.publicPath));
    coordinator = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, '--broker', broker.url, '--http-port', '0', '--log-level', 'info']);
    await coordinator.waitForLine(/coordinator started/, 60_000);
    const admin = JSON.parse(await readFile(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string };
    url = admin.url;
    token = admin.token;

    attacker = await mqtt.connectAsync(broker.url, { clientId: 'attacker', reconnectPeriod: 0 });
    attacker.on('message', (topic, payload) => captured.push({ topic, payload }));
    await attacker.subscribeAsync('fleet/#', { qos: 1 });

    // Provisioned devices: downloads from the coordinator are authenticated with the device's secret
    // (the broker here accepts anyone; the coordinator's artifact server does not).
    const ids = [0, 1].map((i) => `hostile-${process.pid}-${i}`);
    const { devices: secrets } = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: MODEL });
    for (let i = 0; i < 2; i++) {
      const id = ids[i]!;
      const secret = secrets.find((d) => d.deviceId === id)!.secret;
      const base = join(dir, id);
      const slotsDir = join(base, 'slots');
      const config = join(base, 'agent.json');
      await mkdir(base, { recursive: true });
      await writeFile(
        config,
        JSON.stringify({
          deviceId: id,
          hardwareModel: MODEL,
          firmwareVersion: '1.0.0',
          broker: { url: broker.url, username: id, password: secret, reconnectMin: 100, reconnectMax: 1000 },
          trustStoreDir: join(dataDir, 'trust'),
          dataDir: join(base, 'data'),
          slots: { kind: 'file', dir: slotsDir },
          telemetry: { interval: 1000 },
          logLevel: 'info',
        }),
      );
      devices.push({ id, slotsDir, process: spawnFleet(['agent', 'start', '-c', config]) });
    }
    await waitFor(async () => (await allOn('1.0.0')) && true, 'both devices known on 1.0.0');
  }, SLOW);

  afterAll(async () => {
    for (const p of [...devices.map((d) => d.process), ...others]) await p.stop('SIGTERM', 5_000);
    await coordinator?.stop('SIGTERM', 10_000);
    await attacker?.endAsync(true);
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let floorRaising: string;
  let rollbackCommands: { topic: string; payload: Buffer }[] = [];

  it('a release that raises the floor says so at creation; a rollback after its commit is refused by every device, and the rollback ends', async () => {
    const { id, output } = await release100('1.1.0', 2);
    floorRaising = id;
    const created = JSON.parse(output.slice(output.indexOf('{'))) as { warnings?: string[] };
    expect(created.warnings).toContainEqual(expect.stringMatching(/raises the security floor to 2 on 2 of the 2 known target devices/));
    await waitFor(() => allOn('1.1.0'), 'both devices on 1.1.0');
    await waitFor(async () => (await deployment(id)).phase === 'completed', 'deployment completed');
    const r = await registry();
    for (const d of devices) expect(r.get(d.id)?.securityFloor).toBe(2);

    const before = new Map(await Promise.all(devices.map(async (d) => [d.id, await bootloader(d)] as const)));
    await fleet('deploy', 'rollback', id, '--reason', 'hostile test');
    await waitFor(async () => (await deployment(id)).phase === 'rolled-back', 'rollback finished');
    expect((await deployment(id)).rollback).toMatchObject({ exposed: 2, confirmed: 0, unreachable: 0, refused: 2 });
    const status = await fleet('deploy', 'status', id);
    expect(status).toMatch(/2 refused \(committed above their security floor; they stay\)/);
    for (const d of devices) {
      expect(statuses(d.id).at(-1)).toMatchObject({ deploymentId: id, state: 'committed', reason: 'below-security-floor', toVersion: '1.1.0' });
      expect(await bootloader(d)).toEqual(before.get(d.id));
      // Logged by the device, with its id and the command.
      await d.process.waitForLine(new RegExp(`"deviceId":"${d.id}".*rollback command refused: the other slot is below the security floor`));
    }
    expect(await allOn('1.1.0')).toBe(true);
    rollbackCommands = captured.filter((m) => m.topic.endsWith('/commands'));
    expect(rollbackCommands.length).toBeGreaterThanOrEqual(2);
  }, SLOW);

  it('a replayed manifest is refused: a bound one under another deployment id, an older unbound one as stale', async () => {
    const { id } = await release100('1.2.0', 2);
    await waitFor(() => allOn('1.2.0'), 'both devices on 1.2.0');
    await waitFor(async () => (await deployment(id)).phase === 'completed', 'deployment completed');
    const old = capturedRollout(floorRaising);
    const [victim] = devices;
    const before = await bootloader(victim!);
    await replayRollout(victim!, old, 'replay-1');
    const refusal = await waitFor(() => statuses(victim!.id).find((s) => s.deploymentId === 'replay-1'), 'the replay answered');
    expect(refusal).toMatchObject({ state: 'rejected', reason: 'malformed' }); // bound to its own deployment
    // An unbound manifest of the same release (signed offline) replayed after a newer one: stale.
    const image = join(dir, 'fw-1.1.5.img');
    await writeFile(image, Buffer.alloc(48 * 1024, 'firmware 1.1.5'));
    const sha = (await import('node:crypto')).createHash('sha256').update(await readFile(image)).digest('hex');
    await fleet('firmware', 'sign', image, '--version', '1.1.5', '--hardware', MODEL, '--key', release.keyPath, '--url', `${url}/artifacts/${sha}`,
      '--security-version', '2', '--metadata-version', '1000', '--out', `${image}.manifest.json`);
    const unbound = JSON.parse(await readFile(`${image}.manifest.json`, 'utf8')) as RolloutMessage['manifest'];
    await replayRollout(victim!, { v: 1, kind: 'rollout', deploymentId: 'replay-2', wave: 0, manifest: unbound }, 'replay-2');
    const stale = await waitFor(() => statuses(victim!.id).find((s) => s.deploymentId === 'replay-2'), 'the stale manifest answered');
    expect(stale).toMatchObject({ state: 'rejected', reason: 'stale-manifest' });
    expect(stale.detail).toMatch(/metadataVersion 1000 is not above \d+/);
    // Counted by the coordinator (it never created these deployments) and logged there and on the
    // device with the device, the deployment it came under and what the manifest claims.
    const counters = await waitFor(async () => {
      const c = (await metrics())['device.refusals.stale-manifest'];
      return c !== undefined && c >= 1 ? await metrics() : undefined;
    }, 'the refusal counted');
    expect(counters['device.refusals.unknown-deployment']).toBeGreaterThanOrEqual(1);
    // The log lines reach this process through pipes, possibly after the counter: awaited, not polled once.
    await coordinator.waitForLine(new RegExp(`"deviceId":"${victim!.id}".*"deploymentId":"replay-2".*"reason":"stale-manifest".*never created`));
    await victim!.process.waitForLine(new RegExp(`"deviceId":"${victim!.id}".*"deploymentId":"replay-2".*"reason":"stale-manifest".*"claimed":\\{"metadataVersion":1000.*manifest refused`));
    // Nothing installed, nothing downloaded.
    expect(await bootloader(victim!)).toEqual(before);
    expect(statuses(victim!.id).filter((s) => s.deploymentId.startsWith('replay-') && s.state !== 'rejected')).toEqual([]);
  }, SLOW);

  it('a replayed rollback manifest is refused: bound to its deployment, it cannot come back under another id', async () => {
    // The operator rolls 1.2.0 back to 1.1.9 with a rollback manifest bound to deployment rb-1.
    const image = join(dir, 'fw-1.1.9.img');
    await writeFile(image, Buffer.alloc(48 * 1024, 'firmware 1.1.9'));
    const sha = (await import('node:crypto')).createHash('sha256').update(await readFile(image)).digest('hex');
    await fleet('firmware', 'sign', image, '--version', '1.1.9', '--hardware', MODEL, '--key', release.keyPath, '--url', `${url}/artifacts/${sha}`,
      '--security-version', '2', '--rollback', '--deployment', 'rb-1', '--installable-over', '>=1.2.0 <1.3.0', '--out', `${image}.manifest.json`);
    await fleet('firmware', 'upload', image, '--version', '1.1.9', '--hardware', MODEL, '--manifest', `${image}.manifest.json`);
    const created = await fleet('deploy', 'create', '--firmware', '1.1.9', '--waves', '100', '--soak', '1s', '--min-devices', '1', '--json');
    expect((JSON.parse(created.slice(created.indexOf('{'))) as { id: string }).id).toBe('rb-1');
    await waitFor(() => allOn('1.1.9'), 'both devices rolled back to 1.1.9');
    await waitFor(async () => (await deployment('rb-1')).phase === 'completed', 'rollback deployment completed');
    const { id: next } = await release100('1.3.0', 2);
    await waitFor(() => allOn('1.3.0'), 'both devices on 1.3.0');
    await waitFor(async () => (await deployment(next)).phase === 'completed', 'deployment completed');

    const rollback = capturedRollout('rb-1');
    for (const d of devices) {
      const before = await bootloader(d);
      await replayRollout(d, rollback, 'rb-2');
      const refusal = await waitFor(() => statuses(d.id).find((s) => s.deploymentId === 'rb-2'), 'the replayed rollback answered');
      expect(refusal).toMatchObject({ state: 'rejected', reason: 'malformed' });
      expect(refusal.detail).toMatch(/signed for deployment rb-1, offered as rb-2/);
      await d.process.waitForLine(new RegExp(`"deviceId":"${d.id}".*"deploymentId":"rb-2".*manifest refused`));
      expect(await bootloader(d)).toEqual(before);
    }
    expect(await allOn('1.3.0')).toBe(true);
  }, SLOW);

  it('a replayed command is refused, also after hundreds of others, and a floor-crossing manifest is refused', async () => {
    const [victim] = devices;
    // The coordinator's own rollback command from the first test, replayed byte for byte.
    const theirs = rollbackCommands.find((m) => m.topic === deviceTopic(victim!.id, 'commands'))!;
    const seen = statuses(victim!.id).length;
    const errorsBefore = telemetry(victim!.id).at(-1)!.counters.errors;
    await attacker.publishAsync(theirs.topic, theirs.payload, { qos: 1 });
    await waitFor(() => /"reason":"replayed".*command refused/.test(victim!.process.output()), 'the replayed command refused');
    // 300 fresh commands signed by a trusted key (report-now), then the first of them again.
    const signer = release.key;
    const sent: Buffer[] = [];
    const base = Date.now();
    for (let i = 0; i < 300; i++) {
      const c = buildCommand({ commandId: `bulk-${i}`, deviceId: victim!.id, action: 'report-now', issuedAt: Date.now(), seq: base + i });
      sent.push(Buffer.from(JSON.stringify({ v: 1, kind: 'command', command: signCommand(c, [signer]) })));
    }
    for (const payload of sent) await attacker.publishAsync(deviceTopic(victim!.id, 'commands'), payload, { qos: 1 });
    await waitFor(() => (victim!.process.output().match(/"commandId":"bulk-299"/g) ?? []).length >= 1, 'the last fresh command accepted');
    await attacker.publishAsync(deviceTopic(victim!.id, 'commands'), sent[0]!, { qos: 1 });
    await waitFor(() => /"claimed":\{"commandId":"bulk-0".*"reason":"replayed"|"reason":"replayed".*"claimed":\{"commandId":"bulk-0"/.test(victim!.process.output()), 'replay after 300 others refused');
    // Counted in the device's error counter (its telemetry), logged with the command it claims to be.
    await waitFor(() => telemetry(victim!.id).at(-1)!.counters.errors >= errorsBefore + 2, 'both replays counted', 15_000);
    await victim!.process.waitForLine(new RegExp(`"deviceId":"${victim!.id}".*"reason":"replayed".*"claimed":\\{"commandId":"bulk-0".*command refused`));
    // No status came of any of it: nothing was rolled back.
    expect(statuses(victim!.id).slice(seen).filter((s) => s.state !== 'committed')).toEqual([]);
    expect(await allOn('1.3.0')).toBe(true);

    // A release below the floor (securityVersion 1 < 2): the operator is warned, every device refuses it.
    const image = join(dir, 'fw-1.4.0.img');
    await writeFile(image, Buffer.alloc(48 * 1024, 'firmware 1.4.0'));
    await fleet('firmware', 'upload', image, '--version', '1.4.0', '--hardware', MODEL, '--security-version', '1');
    const created = await fleet('deploy', 'create', '--firmware', '1.4.0', '--waves', '100', '--soak', '1s', '--min-devices', '1');
    expect(created).toMatch(/warning: firmware 1\.4\.0 has securityVersion 1, below the floor of 2 of the 2 known target devices: they refuse it/);
    for (const d of devices) {
      const before = await bootloader(d);
      await waitFor(() => statuses(d.id).find((s) => s.toVersion === '1.4.0' || (s.state === 'rejected' && s.reason === 'below-security-floor')), 'the low release answered');
      expect(statuses(d.id).at(-1)).toMatchObject({ state: 'rejected', reason: 'below-security-floor' });
      expect(await bootloader(d)).toEqual(before);
    }
    expect(await allOn('1.3.0')).toBe(true);
  }, SLOW);
});
