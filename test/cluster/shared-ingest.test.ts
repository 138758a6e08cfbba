/**
 * Ingest split between coordinator replicas on Debian's Mosquitto: with the replicas' subscriptions,
 * each telemetry message reaches exactly one replica (a shared subscription: another replica adds
 * capacity) while every hello and status reaches every replica (so no acknowledged status waits in a
 * dead replica's session). On a Mosquitto with dynamic security, the coordinator's account may make
 * these subscriptions (the broker would refuse a forbidden one with 0x80).
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { deviceTopic } from '@fleet/protocol/topics';
import { ExternalBroker } from '../../coordinator/broker/external-broker.js';
import type { InboundMessage } from '../../coordinator/broker/transport.js';
import { replicaSubscriptions } from '../../coordinator/cluster/replica-subscriptions.js';
import { hasMosquitto, Mosquitto } from '../support/mosquitto.js';
import { hasDynsec, startDynsecMosquitto } from '../support/mosquitto-dynsec.js';
import { waitFor } from '../support/wait-for.js';

const logger = pino({ level: 'silent' });
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

async function replica(url: string, clientId: string, auth: { username?: string; password?: string } = {}): Promise<{ got: string[] }> {
  const got: string[] = [];
  const b = new ExternalBroker({ url, clientId, logger, subscriptions: replicaSubscriptions('fleet-test'), ...auth });
  b.onMessage((m: InboundMessage) => {
    got.push(`${m.topic} ${m.payload.toString('utf8')}`);
    m.ack();
  });
  await b.start();
  stops.push(() => b.stop());
  return { got };
}

describe('replica subscriptions', () => {
  it('are every device topic for a single coordinator, and shared telemetry plus control for replicas', () => {
    expect(replicaSubscriptions(undefined)).toEqual(['fleet/v1/devices/+/+']);
    expect(replicaSubscriptions('g1')).toEqual(['$share/g1/fleet/v1/devices/+/telemetry', 'fleet/v1/devices/+/hello', 'fleet/v1/devices/+/status', 'fleet/v1/devices/+/presence']);
    expect(() => replicaSubscriptions('a/b')).toThrow(/share group/);
  });

  it.skipIf(!hasMosquitto)('split telemetry between two replicas and give each of them every status', async () => {
    const m = await Mosquitto.start({ allowAnonymous: true });
    stops.push(() => m.close());
    const a = await replica(m.url, 'coordinator-a');
    const b = await replica(m.url, 'coordinator-b');
    const device = await mqtt.connectAsync(m.url, { clientId: 'dev-1', reconnectPeriod: 0 });
    stops.push(() => device.endAsync(true));
    const n = 60;
    for (let i = 0; i < n; i++) await device.publishAsync(deviceTopic('dev-1', 'telemetry'), `t${i}`, { qos: 1 });
    for (let i = 0; i < 5; i++) await device.publishAsync(deviceTopic('dev-1', 'status'), `s${i}`, { qos: 1 });
    const telemetry = (r: { got: string[] }): string[] => r.got.filter((g) => g.includes('/telemetry '));
    const statuses = (r: { got: string[] }): string[] => r.got.filter((g) => g.includes('/status '));
    await waitFor(() => telemetry(a).length + telemetry(b).length === n && statuses(a).length === 5 && statuses(b).length === 5, 'every message delivered');
    // Each telemetry message once, to one of them; both took a share.
    expect([...telemetry(a), ...telemetry(b)].sort()).toEqual(Array.from({ length: n }, (_, i) => `fleet/v1/devices/dev-1/telemetry t${i}`).sort());
    expect(telemetry(a).length).toBeGreaterThan(0);
    expect(telemetry(b).length).toBeGreaterThan(0);
    expect(statuses(a)).toEqual(statuses(b));
  });

  it.skipIf(!hasDynsec)("are granted to the coordinator's account on Mosquitto with dynamic security", async () => {
    const d = await startDynsecMosquitto();
    stops.push(() => d.close());
    // start() throws when the broker refuses any of the filters.
    await replica(d.url, 'coordinator-a', d.account);
    await replica(d.url, 'coordinator-b', d.account);
  });
});
