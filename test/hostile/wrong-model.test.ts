/**
 * Hostile: a provisioned rpi4 saying hello as cm4, against `fleet coordinator start` as a process. The
 * provisioned model is authoritative: the claim is refused (nothing in the hello is recorded), flagged
 * on the device for operators (`fleet devices show`, the API, metrics, the log) and never changes
 * which rollout topics the device may read — on the embedded broker and on a Mosquitto whose accounts
 * the coordinator keeps.
 */
import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { BROKERS, helloPayload, sayHello, startCoordinatorProcess, subscribeCode, waitFor } from './hostile-harness.js';

interface DeviceView {
  hardwareModel: string | null;
  firmwareVersion: string | null;
  agentVersion: string | null;
  anomalies: { kind: string; count: number; detail: string }[];
}

describe.each(BROKERS)('hostile: wrong hardware model (%s broker)', (broker) => {
  it('refuses a hello claiming another model, flags the device, and leaves its record and ACL alone', { timeout: 120_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker });
    const secrets = await c.provision(['pi-m1'], 'rpi4');
    // Provisioned without a model: its first hello's model becomes the registered one.
    const unmodelled = await c.api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ['pi-m2'] });
    const pi = await c.device('pi-m1', secrets.get('pi-m1')!);
    await sayHello(c, pi, 'pi-m1', 'rpi4', '1.0.0');

    await pi.publishAsync(deviceTopic('pi-m1', 'hello'), helloPayload('pi-m1', 'cm4', '7.7.7'), { qos: 1 });
    const show = (id: string): Promise<DeviceView> => c.api<DeviceView>('GET', `/v1/devices/${id}`).then((r) => r.body);
    const flagged = await waitFor(async () => (await show('pi-m1')).anomalies.find((a) => a.kind === 'wrong-model'), 'wrong-model anomaly');
    expect(flagged).toMatchObject({ count: 1, detail: 'said hello as cm4; registered as rpi4' });
    expect(await show('pi-m1')).toMatchObject({ hardwareModel: 'rpi4', firmwareVersion: '1.0.0' });

    // The rollout-topic ACL still follows the registered model.
    expect(await subscribeCode(pi, rolloutTopic('cm4', bucketOf('pi-m1')))).toBe(128);
    expect(await subscribeCode(pi, rolloutTopic('rpi4', bucketOf('pi-m1')))).toBe(1);

    const counters = await c.counters();
    expect(counters['ingest.hello.refused']).toBe(1);
    expect(counters['anomalies.wrong-model']).toBe(1);
    await waitFor(() => c.logs().some((l) => l['msg'] === 'device anomaly' && l['deviceId'] === 'pi-m1' && l['anomaly'] === 'wrong-model'), 'anomaly logged with the device id');

    // Operators see it in the CLI.
    const out = await c.cli(['devices', 'show', 'pi-m1']);
    expect(out.code).toBe(0);
    expect(out.output).toMatch(/wrong-model.*said hello as cm4; registered as rpi4/);
    const all = await c.cli(['devices', 'anomalies', '--kind', 'wrong-model', '--json']);
    expect(JSON.parse(all.output.slice(all.output.indexOf('{'))) as unknown).toMatchObject({ anomalies: [{ deviceId: 'pi-m1', kind: 'wrong-model', count: 1 }] });

    // A device provisioned without a model is pinned by its first hello.
    const m2 = await c.device('pi-m2', unmodelled.body.devices[0]!.secret);
    await sayHello(c, m2, 'pi-m2', 'rpi4', '1.0.0');
    await m2.publishAsync(deviceTopic('pi-m2', 'hello'), helloPayload('pi-m2', 'cm4', '1.0.0'), { qos: 1 });
    await waitFor(async () => (await show('pi-m2')).anomalies.some((a) => a.kind === 'wrong-model'), 'pi-m2 flagged');
    expect((await show('pi-m2')).hardwareModel).toBe('rpi4');
    // (On Mosquitto the role is narrowed in the background after the first hello.)
    await waitFor(async () => (await subscribeCode(m2, rolloutTopic('cm4', bucketOf('pi-m2')))) === 128, 'pi-m2 refused cm4');
    expect(await subscribeCode(m2, rolloutTopic('rpi4', bucketOf('pi-m2')))).toBe(1);
    expect((await c.api('GET', '/v1/health')).status).toBe(200);
  });
});
