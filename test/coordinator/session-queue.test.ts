/**
 * A persistent session's QoS 1 messages on the embedded broker (in memory, the default). Through a
 * real broker: a device that reconnects 30 times while a command for it is published every
 * millisecond gets each CONNACK first, is never disconnected by the broker, and receives every command
 * at least once (live, from its session's replay after the CONNACK, or with its next connection when
 * it ended one with commands in flight). Before coordinator/broker/session-queue.ts the broker closed
 * the device's connection in about one reconnect in three (the memory persistence failed the replay of
 * a message acknowledged meanwhile), and its identifiers could make a PUBACK clear another message.
 * Then the queue itself, driven as Aedes drives it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { closeDatabase, openDatabase, type Db } from '../../coordinator/store/db.js';
import { indexedMemoryPersistence } from '../../coordinator/broker/retained-index.js';
import { withSessionQueues } from '../../coordinator/broker/session-queue.js';
import { silentLogger, uniqueId } from './helpers.js';
import { reconnectWhileCommandsFlow } from './reconnect-probe.js';

describe('a persistent session on the embedded broker', () => {
  let db: Db;
  let broker: EmbeddedBroker;
  let credentials: CredentialStore;

  beforeAll(async () => {
    db = openDatabase(':memory:');
    credentials = await CredentialStore.load(new SqliteSql(db));
    broker = new EmbeddedBroker({ port: 0, host: '127.0.0.1', credentials, allowAnonymous: false, hardwareModelOf: () => 'rpi4', logger: silentLogger, counters: new Counters() });
    broker.onMessage((m) => m.ack());
    await broker.start();
  });

  afterAll(async () => {
    await broker?.stop();
    if (db) closeDatabase(db);
  });

  it('answers each reconnect with its CONNACK first, keeps it connected and delivers every command published meanwhile', async () => {
    const id = uniqueId('dev');
    const { secret } = await credentials.provision(id);
    const firstPackets: string[] = [];
    const report = await reconnectWhileCommandsFlow({
      device: { id, secret },
      firstUrl: broker.url,
      url: broker.url,
      publish: (topic, payload) => broker.publish(topic, payload, { qos: 1, retain: false }),
      rounds: 30,
      everyMs: 1,
      connectTimeoutMs: 10_000,
      onReconnect: (outcome, firstPacket) => {
        expect(outcome).toBe('connected');
        firstPackets.push(firstPacket);
      },
    });
    expect(firstPackets.filter((p) => p !== 'connack')).toEqual([]);
    expect({ missing: report.missing, closedByBroker: report.closedByBroker }).toEqual({ missing: [], closedByBroker: [] });
  }, 60_000);
});

describe('the in-memory session queue', () => {
  /** A fresh queue and what Aedes does with it for the session of device `dev`. */
  function session() {
    const queues = withSessionQueues(indexedMemoryPersistence());
    const p = queues.persistence as unknown as {
      outgoingEnqueueCombi(subs: { clientId: string }[], packet: object): Promise<void>;
      outgoingUpdate(client: object, packet: object): Promise<void>;
      outgoingClearMessageId(client: object, packet: { messageId?: number | undefined }): Promise<object | undefined>;
      outgoingStream(client: object): AsyncIterable<{ payload: Buffer; messageId?: number }>;
    };
    let counter = 0;
    return {
      /** A connection of the device (Aedes makes one client object per connection). */
      connect: () => ({ id: 'dev' }),
      /** The broker publishes a command: queued for the session. */
      async publish(payload: string) {
        const packet = { cmd: 'publish', topic: 'fleet/dev/commands', payload: Buffer.from(payload), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: ++counter };
        await p.outgoingEnqueueCombi([{ clientId: 'dev' }], packet);
        return packet;
      },
      /** A live delivery: a copy numbered by the connection; the identifier it is written with. */
      async live(connection: object, packet: object, nextId: number) {
        const out = { ...packet, messageId: nextId };
        await p.outgoingUpdate(connection, out);
        return out.messageId;
      },
      /** The replay's snapshot of the queue, taken right after a CONNACK. */
      async snapshot(connection: object) {
        const snapshot = [];
        for await (const queued of p.outgoingStream(connection)) snapshot.push(queued);
        return snapshot;
      },
      /** The replay of a snapshot: per message, the identifier it is written with, or 'skipped'. */
      async replay(connection: object, snapshot: { messageId?: number }[], nextId: () => number) {
        const sent: (number | 'skipped')[] = [];
        for (const queued of snapshot) {
          const out = { ...queued, messageId: queued.messageId ?? nextId() };
          await p.outgoingUpdate(connection, out);
          if (!queues.unsent(out)) {
            sent.push(out.messageId);
            continue;
          }
          sent.push('skipped');
          // Aedes clears a replayed message it does not forward, by identifier.
          await p.outgoingClearMessageId(connection, out);
        }
        return sent;
      },
      puback: (connection: object, messageId: number | undefined) => p.outgoingClearMessageId(connection, { messageId }),
      async queued(connection: object) {
        const out: string[] = [];
        for await (const q of p.outgoingStream(connection)) out.push(q.payload.toString('utf8'));
        return out;
      },
      unsent: queues.unsent,
    };
  }

  it('replays neither a message this connection sent live nor one acknowledged meanwhile, and never fails the replay', async () => {
    const s = session();
    const c = s.connect();
    const m1 = await s.publish('1');
    const m2 = await s.publish('2');
    // Both published while the session was restored: they go out live, and are in the replay's snapshot.
    expect(await s.live(c, m1, 100)).toBe(100);
    expect(await s.live(c, m2, 101)).toBe(101);
    const snapshot = await s.snapshot(c);
    // The second one's PUBACK comes before the replay gets to it.
    await s.puback(c, 101);
    expect(await s.replay(c, snapshot, () => 102)).toEqual(['skipped', 'skipped']);
    // Still queued until its own PUBACK.
    expect(await s.queued(c)).toEqual(['1']);
    await s.puback(c, 100);
    expect(await s.queued(c)).toEqual([]);
  });

  it('gives no new message an identifier a queued one still holds, so a PUBACK clears only its own', async () => {
    const s = session();
    const first = s.connect();
    const m1 = await s.publish('1');
    // Sent with 7 on a connection that ended before its PUBACK.
    expect(await s.live(first, m1, 7)).toBe(7);
    const second = s.connect();
    const m2 = await s.publish('2');
    // The new connection numbers from its own start, which happens to be 7.
    expect(await s.live(second, m2, 7)).toBe(8);
    // The replay sends the old message with its own identifier (MQTT 3.1.1 §4.4), the new one not again.
    expect(await s.replay(second, await s.snapshot(second), () => 9)).toEqual([7, 'skipped']);
    await s.puback(second, 8);
    expect(await s.queued(second)).toEqual(['1']);
    await s.puback(second, 7);
    expect(await s.queued(second)).toEqual([]);
  });

  it('numbers messages queued while the device was away on the replay', async () => {
    const s = session();
    await s.publish('1');
    await s.publish('2');
    const c = s.connect();
    let next = 500;
    expect(await s.replay(c, await s.snapshot(c), () => next++)).toEqual([500, 501]);
    await s.puback(c, 501);
    expect(await s.queued(c)).toEqual(['1']);
  });

  it('keeps the queue when Aedes clears without an identifier (a forward it refused)', async () => {
    const s = session();
    const c = s.connect();
    await s.publish('1');
    await s.publish('2');
    expect(await s.puback(c, undefined)).toBeUndefined();
    expect(await s.queued(c)).toEqual(['1', '2']);
  });

  it('clears a message sent on two connections at once (a takeover) with either PUBACK', async () => {
    const s = session();
    const old = s.connect();
    const taking = s.connect();
    const m1 = await s.publish('1');
    expect(await s.live(old, m1, 40)).toBe(40);
    expect(await s.live(taking, m1, 60)).toBe(60);
    await s.puback(old, 40);
    expect(await s.queued(taking)).toEqual([]);
    // The other copy's PUBACK finds nothing, and clears nothing else.
    const m2 = await s.publish('2');
    await s.live(taking, m2, 61);
    await s.puback(taking, 60);
    expect(await s.queued(taking)).toEqual(['2']);
  });
});
