/**
 * The coordinator's effect sink stops a deployment with a retained rollout-cancel, and never buries a
 * later deployment's manifest under it. Real embedded Aedes on 127.0.0.1 port 0, a real mqtt.js device.
 */
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { openDatabase, closeDatabase, type Db } from '../../coordinator/store/db.js';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { AuditLog } from '../../coordinator/store/audit-log.js';
import { Publisher } from '../../coordinator/broker/publisher.js';
import { CoordinatorEffectSink } from '../../coordinator/deployments/effect-sink.js';
import { generateSigningKey } from '../../firmware/keys.js';
import { bucketOf } from '../../protocol/bucket.js';
import { RolloutMessageSchema, RolloutTopicMessageSchema, type RolloutMessage, type RolloutTopicMessage } from '../../protocol/messages.js';
import { parsePayload } from '../../protocol/parse.js';
import { rolloutTopic } from '../../protocol/topics.js';
import { silentLogger, uniqueId } from './helpers.js';

let db: Db;
let broker: EmbeddedBroker;
let credentials: CredentialStore;
let publisher: Publisher;
let sink: CoordinatorEffectSink;
let counters: Counters;
const models = new Map<string, string>();
const T = 1_800_000_000_000;
let commandSeq = 0;

beforeEach(async () => {
  db = openDatabase(':memory:');
  counters = new Counters();
  credentials = await CredentialStore.load(new SqliteSql(db));
  broker = new EmbeddedBroker({ port: 0, host: '127.0.0.1', credentials, allowAnonymous: false, hardwareModelOf: (id) => models.get(id), logger: silentLogger, counters });
  broker.onMessage((m) => m.ack());
  await broker.start();
  publisher = new Publisher(new SqliteSql(db), broker, () => T);
  sink = new CoordinatorEffectSink({ publisher, key: generateSigningKey(), auditLog: new AuditLog(new SqliteSql(db)), logger: silentLogger, counters, now: () => T, commandSeq: () => Promise.resolve(++commandSeq) });
});

afterEach(async () => {
  await broker.stop();
  closeDatabase(db);
});

function rollout(deploymentId: string): RolloutMessage {
  const raw = JSON.parse(readFileSync(new URL('../fixtures/messages/v1/rollout.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  return RolloutMessageSchema.parse({ ...raw, deploymentId });
}

/** What a device connecting now finds retained on its rollout topic. */
async function retainedFor(deviceId: string, secret: string): Promise<RolloutTopicMessage | 'empty'> {
  // The broker's ACL wants the device id as client id; a clean session sees only what is retained.
  const client = await mqtt.connectAsync(broker.url, { clientId: deviceId, username: deviceId, password: secret, reconnectPeriod: 0, clean: true });
  const topic = rolloutTopic('rpi4', bucketOf(deviceId));
  // The broker sends what is retained right after the SUBACK; a live message published after the
  // SUBACK follows it on the same connection. Nothing before that marker: nothing is retained.
  const marker = Buffer.from(`marker-${uniqueId('m')}`);
  const got = new Promise<RolloutTopicMessage | 'empty'>((resolve, reject) => {
    client.on('message', (t, payload) => {
      if (t !== topic) return;
      if (payload.equals(marker)) return resolve('empty');
      const parsed = parsePayload(RolloutTopicMessageSchema, payload, 'retained');
      if (parsed.ok) resolve(parsed.value);
      else reject(parsed.error);
    });
  });
  try {
    await client.subscribeAsync(topic, { qos: 1 });
    await broker.publish(topic, marker, { qos: 1, retain: false });
    return await got;
  } finally {
    await client.endAsync(true);
  }
}

async function device(): Promise<{ id: string; secret: string; bucket: number }> {
  const id = uniqueId('dev');
  const { secret } = await credentials.provision(id);
  models.set(id, 'rpi4');
  return { id, secret, bucket: bucketOf(id) };
}

describe('effect sink: stopping a deployment', () => {
  it('leaves a retained rollout-cancel that a device connecting later receives', async () => {
    const dev = await device();
    await sink.publishRollout('rpi4', [dev.bucket], rollout('dep-a'));
    expect(await retainedFor(dev.id, dev.secret)).toMatchObject({ kind: 'rollout', deploymentId: 'dep-a' });
    await sink.clearRollout('rpi4', [dev.bucket], 'dep-a');
    expect(await retainedFor(dev.id, dev.secret)).toEqual({ v: 1, kind: 'rollout-cancel', deploymentId: 'dep-a', at: T });
    expect(counters.get('rollout.topics.cancelled')).toBe(1);
    // Recorded, so a restarted embedded broker gets it back.
    expect((await publisher.retained(rolloutTopic('rpi4', dev.bucket)))?.length).toBeGreaterThan(0);
  });

  it("a later deployment's manifest replaces the cancel, and a repeated cancel of the old one leaves it alone", async () => {
    const dev = await device();
    await sink.publishRollout('rpi4', [dev.bucket], rollout('dep-a'));
    await sink.clearRollout('rpi4', [dev.bucket], 'dep-a');
    await sink.publishRollout('rpi4', [dev.bucket], rollout('dep-b'));
    expect(await retainedFor(dev.id, dev.secret)).toMatchObject({ kind: 'rollout', deploymentId: 'dep-b' });
    // The old deployment's effects replayed (a restart reconciles it): dep-b's manifest stays.
    await sink.clearRollout('rpi4', [dev.bucket], 'dep-a');
    expect(await retainedFor(dev.id, dev.secret)).toMatchObject({ kind: 'rollout', deploymentId: 'dep-b' });
  });

  it('without a deployment id it clears the topic (empty retained payload), as before', async () => {
    const dev = await device();
    await sink.publishRollout('rpi4', [dev.bucket], rollout('dep-a'));
    await sink.clearRollout('rpi4', [dev.bucket]);
    expect(await retainedFor(dev.id, dev.secret)).toBe('empty');
    expect(await publisher.retained(rolloutTopic('rpi4', dev.bucket))).toBeUndefined();
  });
});
