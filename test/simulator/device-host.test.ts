/**
 * One simulated device on the real agent, against a real Aedes broker and a real HTTP artifact server
 * on 127.0.0.1: installs and commits a good image, falls back from a boot-looping one, dies on a
 * bricking one (counted as the firmware's doing, not the system's), and survives faulty downloads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { Aedes } from 'aedes';
import { PacedClock } from '../../simulator/paced-clock.js';
import { waitFor } from '../support/wait-for.js';
import { bucketOf } from '../../protocol/bucket.js';
import { rolloutTopic } from '../../protocol/topics.js';
import { generateSigningKey } from '../../firmware/keys.js';
import { createTrustStore } from '../../firmware/trust-store.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { DeviceHost, fleetAgentConfig, type FirmwareImage } from '../../simulator/device-host.js';
import { composeFleet } from '../../simulator/fleet-composition.js';
import { FaultSpecSchema, FleetSpecSchema, type Behaviour } from '../../simulator/scenario.js';
import { digest, imageBytes } from '../../simulator/firmware-images.js';
import { DownloadFaultProxy } from '../../simulator/download-faults.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(behaviour: Behaviour, faults: Partial<ReturnType<typeof FaultSpecSchema.parse>> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-devhost-'));
  const aedes = await Aedes.createBroker();
  // What the device published, for the tests that read its hello and telemetry.
  const published: { topic: string; payload: Buffer }[] = [];
  aedes.on('publish', (packet, client) => {
    if (client) published.push({ topic: packet.topic, payload: Buffer.from(packet.payload) });
  });
  const broker: Server = createNetServer(aedes.handle);
  await new Promise<void>((r) => broker.listen(0, '127.0.0.1', r));
  const brokerUrl = `mqtt://127.0.0.1:${(broker.address() as AddressInfo).port}`;
  const v2bytes = imageBytes('test/1.1.0', 64);
  const artifacts = http.createServer((req, res) => {
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, { 'content-length': String(v2bytes.length - from) });
    res.end(v2bytes.subarray(from));
  });
  await new Promise<void>((r) => artifacts.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(artifacts.address() as AddressInfo).port}/artifacts/1.1.0`;
  const clock = new PacedClock({ scale: 200 });
  clock.start();
  const proxy = new DownloadFaultProxy(clock);
  await proxy.start();
  cleanups.push(async () => {
    await proxy.stop();
    clock.stop();
    await new Promise<void>((r) => aedes.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => artifacts.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });
  const key = generateSigningKey();
  const base: FirmwareImage = { version: '1.0.0', ...digest(imageBytes('test/1.0.0', 64)) };
  const next: FirmwareImage = { version: '1.1.0', ...digest(v2bytes) };
  const [spec] = composeFleet(FleetSpecSchema.parse({}), 1, randomUUID(), `t${randomUUID().slice(0, 8)}`);
  const faultCounts: Record<string, number> = {};
  const host = new DeviceHost({
    spec: spec!,
    clock,
    logger: pino({ level: 'silent' }),
    agentConfig: fleetAgentConfig(brokerUrl, base.version, 60_000),
    secret: null,
    trust: createTrustStore([key]),
    dataDir: join(dir, 'device'),
    baseImage: base,
    images: new Map([[base.sha256, base], [next.sha256, next]]),
    behaviours: new Map([['1.1.0', behaviour]]),
    sampleNoise: 0.04,
    faults: FaultSpecSchema.parse(faults),
    proxy,
    faultCounts,
  });
  cleanups.push(() => host.stop());
  const publishRollout = () => {
    const manifest = signManifest(
      buildManifest({ firmwareVersion: '1.1.0', hardware: [spec!.hardwareModel], artifact: { url, ...digest(v2bytes) }, deploymentId: 'dep-1', issuedAt: clock.now() }),
      [key],
    );
    const payload = Buffer.from(JSON.stringify({ v: 1, kind: 'rollout', deploymentId: 'dep-1', wave: 0, manifest }));
    return new Promise<void>((r) => aedes.publish({ cmd: 'publish', topic: rolloutTopic(spec!.hardwareModel, bucketOf(spec!.deviceId)), payload, qos: 1, retain: true, dup: false }, () => r()));
  };
  return { host, publishRollout, faultCounts, published };
}


describe('simulated device host', () => {
  it('installs and commits a healthy release, with ground truth of what booted', async () => {
    const { host, publishRollout } = await world({ kind: 'healthy' });
    await host.start();
    await waitFor(() => host.connected, 'host.connected');
    await publishRollout();
    await waitFor(() => host.slots.primary === 'B' && !host.slots.trial, 'host.slots.primary === "B" && !host.slots.trial');
    expect(host.truth.finalVersion).toBe('1.1.0');
    expect(host.truth.ranAt['1.1.0']).toBeGreaterThan(0);
    expect(host.truth.updateStartedAt['dep-1']).toBeDefined();
    expect(host.truth.brickedBySystem).toBeNull();
    await host.sendTelemetry();
  });

  it('falls back from a boot-looping release to the previous version', async () => {
    const { host, publishRollout } = await world({ kind: 'boot-loop', share: 1 });
    await host.start();
    await waitFor(() => host.connected, 'host.connected');
    await publishRollout();
    await waitFor(() => host.truth.leftAt['1.1.0'] !== undefined && host.connected, 'host.truth.leftAt["1.1.0"] !== undefined && host.connected');
    expect(host.truth.ranAt['1.1.0']).toBeDefined();
    expect(host.truth.finalVersion).toBe('1.0.0');
    expect(host.slots.primary).toBe('A');
    expect(host.alive).toBe(true);
  });

  it('a bricking release kills the device, and that is the firmware, not the system', async () => {
    const { host, publishRollout } = await world({ kind: 'brick', share: 1 });
    await host.start();
    await waitFor(() => host.connected, 'host.connected');
    await publishRollout();
    await waitFor(() => !host.alive, '!host.alive');
    expect(host.truth.brickedByFirmware).toMatchObject({ version: '1.1.0' });
    expect(host.truth.brickedBySystem).toBeNull();
    expect(host.truth.finalVersion).toBeNull();
  });

  it('a corrupted download never reaches a slot: the device refuses it and keeps its version', async () => {
    const { host, publishRollout, faultCounts } = await world({ kind: 'healthy' }, { corruptedDownloadShare: 1 });
    await host.start();
    await waitFor(() => host.connected, 'host.connected');
    await publishRollout();
    await waitFor(() => host.corruptedRefused, 'host.corruptedRefused', 10_000);
    expect(faultCounts['download-corrupt']).toBe(1);
    expect(host.slots.calls.writes).toBe(0);
    expect(host.slots.calls.arms).toBe(0);
    expect(host.truth.finalVersion).toBe('1.0.0');
    expect(host.truth.ranAt['1.1.0']).toBeUndefined();
  });

  it('a download cut off part-way resumes and installs', async () => {
    const { host, publishRollout, faultCounts } = await world({ kind: 'healthy' }, { interruptedDownloadShare: 1 });
    await host.start();
    await waitFor(() => host.connected, 'host.connected');
    await publishRollout();
    await waitFor(() => host.slots.primary === 'B' && !host.slots.trial, 'host.slots.primary === "B" && !host.slots.trial', 20_000);
    expect(faultCounts['download-cut']).toBe(1);
  });
});

describe('simulated device host: power loss around the trial of a good release', () => {
  it.each(['installing', 'rebooting', 'trial', 'committing'] as const)(
    'a power cut soon after %s still ends committed on the new version (an interrupted trial is retried)',
    async (stage) => {
      const { host, publishRollout, faultCounts } = await world({ kind: 'healthy' }, { powerLossShare: 1, powerLossStages: [stage] });
      await host.start();
      await waitFor(() => host.connected, 'host.connected');
      await publishRollout();
      await waitFor(() => host.slots.primary === 'B' && !host.slots.trial && host.connected, 'host.slots.primary === "B" && !host.slots.trial && host.connected', 20_000);
      expect(faultCounts['power-losses']).toBe(1);
      expect(host.truth.finalVersion).toBe('1.1.0');
      expect(host.truth.brickedBySystem).toBeNull();
      // At most one retried trial: the trial armed for the install, plus one after an interruption.
      expect(host.slots.calls.arms).toBeLessThanOrEqual(2);
    },
  );
});

describe('simulated device host: what its counters count', () => {
  it('a dropped connection is no agent restart and no crash; the update\'s reboot is a reboot', async () => {
    const { host, publishRollout, published } = await world({ kind: 'healthy' });
    const of = (channel: string) => published.filter((p) => p.topic.endsWith(`/${host.deviceId}/${channel}`)).map((p) => JSON.parse(p.payload.toString('utf8')) as Record<string, unknown>);
    await host.start();
    await waitFor(() => of('hello').length >= 1, 'of("hello").length >= 1');
    for (let i = 0; i < 3; i++) {
      // A hello per connection (one not yet acknowledged when the connection dropped comes again: QoS 1).
      const hellos = of('hello').length;
      host.dropConnection();
      await waitFor(() => of('hello').length > hellos, 'of("hello").length > hellos');
    }
    await publishRollout();
    await waitFor(() => host.slots.primary === 'B' && !host.slots.trial && host.connected, 'host.slots.primary === "B" && !host.slots.trial && host.connected', 20_000);
    await host.sendTelemetry();
    await waitFor(() => of('telemetry').length > 0, 'of("telemetry").length > 0');
    expect(of('telemetry').at(-1)!['counters']).toMatchObject({ crashes: 0, agentRestarts: 0, reboots: 1 });
  });
});
