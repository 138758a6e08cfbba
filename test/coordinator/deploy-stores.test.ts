/**
 * The status inbox and the retained-message record on both stores. What each promises is checked
 * from a second connection to the same file or database, so "committed" means visible to another
 * process: a status's `record` resolves (and its PUBACK may go) only once its row is committed; a
 * retained message is committed before the broker is asked to publish it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { StatusMessageSchema, type StatusMessage } from '../../protocol/messages.js';
import { StatusInbox } from '../../coordinator/ingest/status-inbox.js';
import { Publisher } from '../../coordinator/broker/publisher.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { durableStoreOpener, STORE_KINDS, type StoreKind } from '../support/postgres.js';

/** The store under test and a second connection to the same data (another process's view). */
async function twoConnections(kind: StoreKind): Promise<{ store: Sql; observer: Sql }> {
  const open = await durableStoreOpener(kind);
  const store = await open();
  const observer = await open();
  onTestFinished(async () => {
    await observer.close();
    await store.close();
  });
  return { store, observer };
}

const fixture = StatusMessageSchema.parse(JSON.parse(readFileSync(new URL('../fixtures/messages/v1/status.json', import.meta.url), 'utf8')));
const status = (deviceId: string, seq: number): StatusMessage => ({ ...fixture, deviceId, seq });

const inboxKeys = async (observer: Sql): Promise<string[]> =>
  (await observer.all<{ device_id: string; seq: number }>('SELECT device_id, seq FROM status_inbox ORDER BY id')).map((r) => `${r.device_id}#${r.seq}`);

describe.each(STORE_KINDS)('status inbox on %s', (kind) => {
  it('resolves each record only once its row is committed, groups a turn, and replays in arrival order', async () => {
    const { store, observer } = await twoConnections(kind);
    const inbox = new StatusInbox(store);
    const seen: string[][] = [];
    // 150 statuses in one turn (more than one INSERT's rows), then 20 while that commit is in flight.
    const first = Array.from({ length: 150 }, (_, i) => inbox.record(status(`dev-${i % 10}`, i + 1), 1_000 + i).then(async () => {
      seen.push(await inboxKeys(observer));
    }));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const second = Array.from({ length: 20 }, (_, i) => inbox.record(status('late', i + 1), 2_000 + i));
    await Promise.all([...first, ...second]);
    // Every resolution saw at least the whole first group committed.
    for (const keys of seen) expect(keys.length).toBeGreaterThanOrEqual(150);
    const all = await inboxKeys(observer);
    expect(all).toEqual([...Array.from({ length: 150 }, (_, i) => `dev-${i % 10}#${i + 1}`), ...Array.from({ length: 20 }, (_, i) => `late#${i + 1}`)]);
    const replay = await new StatusInbox(observer).pending();
    expect(replay.map((s) => `${s.deviceId}#${s.seq}`)).toEqual(all);
    expect(replay[0]).toEqual(status('dev-0', 1));
  });

  it('prunes entries past their retention', async () => {
    const { store, observer } = await twoConnections(kind);
    const inbox = new StatusInbox(store, 1_000);
    await Promise.all([inbox.record(status('a', 1), 10_000), inbox.record(status('b', 1), 12_000)]);
    expect(await inbox.prune(11_500)).toBe(1);
    expect(await inboxKeys(observer)).toEqual(['b#1']);
  });

  it('rejects every record of a group whose commit failed (so no PUBACK goes out)', async () => {
    const { store } = await twoConnections(kind);
    const inbox = new StatusInbox(store);
    await store.close();
    const results = await Promise.allSettled([inbox.record(status('a', 1), 1), inbox.record(status('b', 1), 1)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

describe.each(STORE_KINDS)('retained messages on %s', (kind) => {
  it('are committed before they are published, cleared before the empty payload goes out, and restored', async () => {
    const { store, observer } = await twoConnections(kind);
    const published: { topic: string; payload: Buffer; recorded: Buffer | undefined }[] = [];
    const probe = new Publisher(observer, { publish: () => Promise.resolve() }, () => 0);
    const transport = {
      publish: async (topic: string, payload: Buffer) => {
        published.push({ topic, payload, recorded: await probe.retained(topic) });
      },
    };
    const publisher = new Publisher(store, transport, () => 5);
    const topics = Array.from({ length: 30 }, (_, i) => `fleet/rollout/m1/${i}`);
    await publisher.retainMany(topics.map((topic, i) => ({ topic, payload: Buffer.from([i, 255, 0]) })));
    await publisher.retain('fleet/flags', Buffer.from('{"v":1}'));
    expect(published).toHaveLength(31);
    for (const p of published) expect(p.recorded?.equals(p.payload)).toBe(true);
    expect((await publisher.retainedMany([topics[3]!, 'nothing'])).get(topics[3]!)).toEqual(Buffer.from([3, 255, 0]));
    expect(await publisher.retainedTopics('fleet/rollout/m1/1')).toEqual(['fleet/rollout/m1/1', ...topics.slice(10, 20)].sort());
    expect(await publisher.retainedTopics('fleet/rollout/m_')).toEqual([]);

    published.length = 0;
    await publisher.clearMany(topics.slice(0, 10));
    expect(published.map((p) => [p.payload.length, p.recorded])).toEqual(Array.from({ length: 10 }, () => [0, undefined]));
    published.length = 0;
    // After a restart of the embedded broker: what is still recorded goes out again.
    expect(await new Publisher(observer, transport, () => 0).restore()).toBe(21);
    expect(published.map((p) => p.topic).sort()).toEqual([...topics.slice(10), 'fleet/flags'].sort());
  });
});
