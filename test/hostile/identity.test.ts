/**
 * Hostile: anonymous and spoofed identities, against `fleet coordinator start` as a process. Without
 * the opt-in a client without credentials gets nothing; with it (loopback only) it is a logged ghost
 * that never receives a rollout, never enters a wave and never feeds a gate, and it can never be a
 * provisioned device. Credentials for one device never act for another. What holds for any broker runs
 * against the embedded one and a Mosquitto whose accounts the coordinator keeps (`describe.each`).
 */
import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { spawnFleet } from '../support/processes.js';
import { BROKERS, connackCode, helloPayload, sayHello, startCoordinatorProcess, subscribeCode, waitFor, type BrokerKind, type CoordinatorProcess } from './hostile-harness.js';

interface DeviceView {
  deviceId: string;
  hardwareModel: string | null;
  firmwareVersion: string | null;
  tags: string[];
  ghost: boolean;
  anomalies: { kind: string; count: number; detail: string }[];
}

/** What a device's registry record says (not its deployments or anomalies, which change as expected). */
const registryFields = (d: DeviceView): Partial<DeviceView> => ({ deviceId: d.deviceId, hardwareModel: d.hardwareModel, firmwareVersion: d.firmwareVersion, tags: d.tags, ghost: d.ghost });

const device = async (c: CoordinatorProcess, id: string): Promise<DeviceView> => (await c.api<DeviceView>('GET', `/v1/devices/${id}`)).body;

/**
 * CONNACK codes of a refused login: Aedes answers 4 (bad user name or password) and 2 (identifier
 * rejected) for a client id that is not the device's; Mosquitto answers 5 (not authorized) to both.
 */
const refusedLogin = (broker: BrokerKind): number => (broker === 'embedded' ? 4 : 5);
const refusedClientId = (broker: BrokerKind): number => (broker === 'embedded' ? 2 : 5);

describe.each(BROKERS)('hostile: identities on the %s broker', (broker) => {
  it('without the opt-in, a client without credentials is refused, whatever id it claims, and changes nothing', { timeout: 120_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker });
    const secrets = await c.provision(['pi-1']);
    const pi = await c.device('pi-1', secrets.get('pi-1')!);
    await sayHello(c, pi, 'pi-1', 'rpi4', '1.0.0');
    const before = await device(c, 'pi-1');

    // A provisioned id and an unknown one, both without credentials.
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-1' })).toBe(refusedLogin(broker));
    expect(await connackCode(c.mqttUrl, { clientId: 'ghost-1' })).toBe(refusedLogin(broker));

    if (broker === 'embedded') {
      // Mosquitto logs its refusals itself; the embedded broker counts and logs them.
      expect((await c.counters())['mqtt.auth.refused']).toBeGreaterThanOrEqual(2);
      await waitFor(() => c.logs().some((l) => l['msg'] === 'device connection refused' && l['clientId'] === 'pi-1' && l['address'] === '127.0.0.1'), 'refusal logged with the client id and address');
    }
    expect(await device(c, 'pi-1')).toEqual(before);
    expect((await c.api('GET', '/v1/devices/ghost-1')).status).toBe(404);
    // The real device's session was not taken over.
    expect(pi.connected).toBe(true);
    expect((await c.api('GET', '/v1/health')).status).toBe(200);
  });

  it("one device's credentials never act for another: another client id, another device's topics", { timeout: 120_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker });
    const secrets = await c.provision(['pi-a', 'pi-b']);
    const b = await c.device('pi-b', secrets.get('pi-b')!);
    await sayHello(c, b, 'pi-b', 'rpi4', '1.0.0');
    const before = await device(c, 'pi-b');
    // pi-a's secret with pi-b's client id (session takeover) is refused.
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-b', username: 'pi-a', password: secrets.get('pi-a')! })).toBe(refusedClientId(broker));
    expect(b.connected).toBe(true);
    // pi-a, connected as itself, publishing pi-b's hello and status: refused by the ACL.
    const a = await c.device('pi-a', secrets.get('pi-a')!);
    await a.publishAsync(deviceTopic('pi-b', 'hello'), helloPayload('pi-b', 'cm4', '9.9.9'), { qos: 0 });
    if (broker === 'embedded') {
      // Aedes closes the connection; the refusal is counted and logged with the offender.
      await waitFor(async () => ((await c.counters())['mqtt.acl.publish.refused'] ?? 0) >= 1, 'publish refused');
      await waitFor(() => c.logs().some((l) => l['msg'] === 'device publish refused' && l['deviceId'] === 'pi-a'), 'refusal logged with the offender');
    } else {
      // Mosquitto drops it and keeps the connection: pi-a's own hello, sent after, arrives alone.
      await sayHello(c, a, 'pi-a', 'rpi4', '1.0.0');
    }
    expect(await device(c, 'pi-b')).toEqual(before);
  });
});

describe('hostile: identities on the embedded broker', () => {
  it('with --allow-anonymous: a logged ghost that never gets a rollout, never enters a wave, never feeds a gate', { timeout: 180_000 }, async () => {
    const c = await startCoordinatorProcess(['--allow-anonymous']);
    await c.proc.waitForLine(/devices without credentials are accepted/);
    const secrets = await c.provision(['pi-2']);
    const pi = await c.device('pi-2', secrets.get('pi-2')!);
    await sayHello(c, pi, 'pi-2', 'rpi4', '1.0.0');
    const before = await device(c, 'pi-2');

    // A provisioned id is never a device without credentials: refused, flagged on that device.
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-2' })).toBe(5);
    await waitFor(async () => (await device(c, 'pi-2')).anomalies.some((a) => a.kind === 'spoofed-identity'), 'spoofed-identity anomaly on pi-2');
    expect(pi.connected).toBe(true);

    // A new id connects as a ghost, logged at every connect with its id.
    expect(await connackCode(c.mqttUrl, { clientId: 'ghost-2' })).toBe(0);
    const mqtt = await import('mqtt');
    const ghost = await mqtt.default.connectAsync(c.mqttUrl, { clientId: 'ghost-2', reconnectPeriod: 0 });
    try {
      const connects = (): number => c.logs().filter((l) => l['deviceId'] === 'ghost-2' && String(l['msg']).startsWith('device connected without credentials')).length;
      await waitFor(() => connects() === 2, 'a log line per anonymous connect');
      expect((await c.counters())['mqtt.anonymous.connects']).toBe(2);
      await ghost.publishAsync(deviceTopic('ghost-2', 'hello'), helloPayload('ghost-2', 'rpi4', '1.0.0'), { qos: 1 });
      await waitFor(async () => (await c.api<DeviceView>('GET', '/v1/devices/ghost-2')).body?.firmwareVersion === '1.0.0', 'ghost hello recorded');
      expect((await device(c, 'ghost-2')).ghost).toBe(true);
      const list = await c.cli(['devices', 'list']);
      expect(list.output).toMatch(/ghost-2 .*\(ghost\)/);

      // No rollout topic for a ghost, not even its own bucket's.
      expect(await subscribeCode(ghost, rolloutTopic('rpi4', bucketOf('ghost-2')))).toBe(128);
      expect(await subscribeCode(pi, rolloutTopic('rpi4', bucketOf('pi-2')))).toBe(1);

      // A deployment to rpi4 at 100 %: pi-2 is in it, the ghost is not.
      const upload = await c.api<{ sha256: string }>('POST', '/v1/firmware?version=1.1.0&hardware=rpi4', Buffer.alloc(4096, 7));
      expect(upload.status).toBe(201);
      const created = await c.api<{ id: string; phase: string }>('POST', '/v1/deployments', {
        firmwareVersion: '1.1.0',
        target: { hardwareModels: ['rpi4'] },
        waves: [{ percent: 100, soakMs: 600_000, deadlineMs: 3_600_000, minDevicesReporting: 1 }],
      });
      expect(created.status).toBe(201);
      const id = created.body.id;
      const members = async (): Promise<string[]> => (await c.api<{ devices: { deviceId: string }[] }>('GET', `/v1/deployments/${id}/devices`)).body.devices.map((d) => d.deviceId);
      await waitFor(async () => (await members()).includes('pi-2'), 'pi-2 a member');
      // The ghost claims a trial-boot failure: an anomaly on the ghost, never an input to the gate.
      const status = { v: 1, kind: 'status', deviceId: 'ghost-2', deploymentId: id, state: 'rolled-back', fromVersion: '1.1.0', toVersion: '1.0.0', reason: 'trial-boot-failed', seq: 1, at: Date.now() };
      await ghost.publishAsync(deviceTopic('ghost-2', 'status'), JSON.stringify(status), { qos: 1 });
      await waitFor(async () => (await device(c, 'ghost-2')).anomalies.some((a) => a.kind === 'unoffered-status'), 'unoffered-status anomaly on the ghost');
      const view = (await c.api<{ phase: string; waves: { counts: Record<string, number> }[] }>('GET', `/v1/deployments/${id}`)).body;
      expect(view.phase).toBe('rolling');
      expect(view.waves[0]!.counts['trialFailures']).toBe(0);
      expect(await members()).not.toContain('ghost-2');
      // The ghost cannot speak for a real device either.
      await ghost.publishAsync(deviceTopic('pi-2', 'hello'), helloPayload('pi-2', 'rpi4', '6.6.6'), { qos: 0 }).catch(() => undefined);
    } finally {
      await ghost.endAsync(true);
    }
    const after = await device(c, 'pi-2');
    expect(registryFields(after)).toEqual(registryFields(before));

    // An id provisioned while a session without credentials holds it: that session is cut off.
    const squatter = await mqtt.default.connectAsync(c.mqttUrl, { clientId: 'late-1', reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => squatter.once('close', () => resolve()));
    await c.provision(['late-1']);
    squatter.publish(deviceTopic('late-1', 'hello'), helloPayload('late-1', 'rpi4', '6.6.6'), { qos: 0 });
    await closed;
    await waitFor(async () => (await device(c, 'late-1')).anomalies.some((a) => a.kind === 'spoofed-identity'), 'spoofed-identity anomaly on late-1');
    expect(await device(c, 'late-1')).toMatchObject({ ghost: false, firmwareVersion: null });
    await squatter.endAsync(true);
    expect((await c.api('GET', '/v1/health')).status).toBe(200);
  });

  it('refuses to start with --allow-anonymous on a listener other machines can reach: one line, no stack', { timeout: 60_000 }, async () => {
    const p = spawnFleet(['coordinator', 'start', '--allow-anonymous', '--host', '0.0.0.0', '--mqtt-port', '0', '--http-port', '0', '--data-dir', '/tmp/fleet-hostile-never']);
    const exit = await p.exited;
    expect(exit.code).not.toBe(0);
    expect(p.output()).toMatch(/error \[config\]: anonymous devices are accepted on a loopback listener only, not on 0\.0\.0\.0/);
    expect(p.output()).not.toMatch(/\n\s+at /);
  });
});
