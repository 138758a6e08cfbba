/**
 * The persistent sessions' QoS 1 queues of the in-memory embedded broker, in place of those of
 * aedes-persistence's memory persistence. In-process state, no I/O.
 *
 * Aedes keeps a QoS 1 message for a persistent session in its persistence from publish to the
 * device's PUBACK: it numbers the message (packet identifier) when it sends it (`outgoingUpdate`),
 * clears it on the PUBACK (`outgoingClearMessageId`), and after each CONNACK replays a snapshot of the
 * queue (`outgoingStream`). Subscriptions are restored before the CONNACK, so a message published
 * while a device reconnects goes out live and is in the replay's snapshot as well. With the memory
 * persistence (aedes-persistence 11), a device reconnecting while commands flow met two faults:
 * - The replay reached a message whose live copy had been acknowledged meanwhile: the persistence
 *   answered the replay's update with "no such packet", which Aedes takes for a client error, and it
 *   closed the device's connection (1 to 6 of the 30 reconnects of test/coordinator/session-queue.test.ts
 *   on a loaded machine); the rest of the queue waited for the next connect.
 * - A PUBACK clears the first queued message with that identifier. A message keeps the identifier
 *   of the connection that first sent it, and each connection numbers from a random start: a new
 *   message numbered like an older one still queued had its PUBACK clear the older one, which was
 *   then never sent (its replay found it gone and closed the connection, as above). A forward refused
 *   by Aedes (clear without an identifier) dropped the session's first message not yet sent.
 * Here identifiers are unique within a session (one taken moves on to the next free one; a replay
 * keeps a message's own, MQTT 3.1.1 §4.4), a PUBACK clears the message sent with that identifier, the
 * replay skips a message the device acknowledged already or this connection sent live already
 * (`unsent`, for the broker's `authorizeForward`), and a clear without an identifier leaves the queue
 * alone (the message goes out with the next replay). Like the memory persistence's, a session's queue
 * is unbounded and lives as long as the process.
 */
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { AedesPersistence, Packet } from 'aedes-persistence';

/** aedes-packet's constructor, as aedes-persistence exports it (CommonJS): a queued copy without identifier. */
const QueuedPacket = (createRequire(import.meta.url)('aedes-persistence') as { Packet: new (p: object) => Packet }).Packet;

/** MQTT packet identifiers are 1–65,535 (MQTT 3.1.1 §2.3.1). */
const MAX_PACKET_ID = 65_535;

interface Queued {
  /** Its key in `byMessage`. */
  key: string;
  /** The PUBLISH, or its PUBREL once a QoS 2 message is received. */
  packet: Packet;
  /** Identifiers it was sent with and not acknowledged (a live copy and a replay may differ). */
  ids: Set<number>;
  /** The connection (Aedes client) that sent it last. */
  sentOn?: WeakRef<object>;
}

interface Session {
  /** By broker id and counter (one message), in publish order. */
  byMessage: Map<string, Queued>;
  byId: Map<number, Queued>;
}

/** What the queue methods need of Aedes's client and packets. */
interface ClientRef {
  id: string;
}
type OutgoingPacket = Packet & { cmd: string; brokerId: string; brokerCounter: number; messageId?: number };

export interface SessionQueues {
  persistence: AedesPersistence;
  /**
   * True for a replayed packet not to send: the device acknowledged it already, or this connection
   * sent it already. For the broker's `authorizeForward`, which Aedes asks before each replayed send.
   */
  unsent(packet: object): boolean;
}

/** `persistence` (the memory persistence) with these session queues in place of its own. */
export function withSessionQueues(persistence: AedesPersistence): SessionQueues {
  const sessions = new Map<string, Session>();
  /** Replayed copies not to send (`SessionQueues.unsent`). */
  const unsent = new WeakSet<object>();
  const messageKey = (p: OutgoingPacket): string => `${p.brokerId}:${p.brokerCounter}`;

  const enqueue = (clientId: string, packet: OutgoingPacket): void => {
    let session = sessions.get(clientId);
    if (!session) sessions.set(clientId, (session = { byMessage: new Map(), byId: new Map() }));
    const key = messageKey(packet);
    // One copy per session even when several of its subscriptions match.
    if (!session.byMessage.has(key)) session.byMessage.set(key, { key, packet: new QueuedPacket(packet), ids: new Set() });
  };

  /** `wanted` if no other queued message of the session holds it, else the next free identifier. */
  const freeId = (session: Session, wanted: number, owner: Queued | undefined): number => {
    let id = wanted;
    for (let tries = 0; tries < MAX_PACKET_ID; tries++) {
      const holder = session.byId.get(id);
      if (holder === undefined || holder === owner) return id;
      id = id >= MAX_PACKET_ID ? 1 : id + 1;
    }
    return wanted;
  };

  const update = (client: ClientRef & object, packet: OutgoingPacket): void => {
    const session = sessions.get(client.id);
    if (packet.cmd === 'pubrel') {
      // QoS 2, the PUBREL takes its PUBLISH's place (same identifier) until the PUBCOMP.
      const queued = packet.messageId === undefined ? undefined : session?.byId.get(packet.messageId);
      if (queued) queued.packet = packet;
      return;
    }
    const queued = session?.byMessage.get(messageKey(packet));
    if (!session || !queued || queued.sentOn?.deref() === client) {
      // Acknowledged while this copy waited, or sent on this connection already (live, then in the
      // replay's snapshot) and its PUBACK on the way: a replayed copy is not sent (`unsent`); a live
      // one, which Aedes sends once this resolves, gets an identifier no other message holds.
      unsent.add(packet);
      if (session && packet.messageId !== undefined) packet.messageId = freeId(session, packet.messageId, queued);
      return;
    }
    const id = freeId(session, packet.messageId ?? 1, queued);
    // Aedes writes this very packet once this resolves: the identifier it goes out with.
    packet.messageId = id;
    queued.packet.messageId = id;
    queued.ids.add(id);
    queued.sentOn = new WeakRef(client);
    session.byId.set(id, queued);
  };

  const clear = (client: ClientRef, packet: { messageId?: number }): Packet | undefined => {
    // No identifier: a forward Aedes refused; the message stays for the next replay.
    if (packet.messageId === undefined || unsent.has(packet)) return undefined;
    const session = sessions.get(client.id);
    const queued = session?.byId.get(packet.messageId);
    if (!session || !queued) return undefined;
    session.byMessage.delete(queued.key);
    for (const id of queued.ids) session.byId.delete(id);
    if (session.byMessage.size === 0) sessions.delete(client.id);
    return queued.packet;
  };

  // The typings describe the callback interface; Aedes 1.x calls these without one and awaits them.
  const p = persistence as unknown as {
    outgoingEnqueue(sub: { clientId: string }, packet: OutgoingPacket): Promise<void>;
    outgoingEnqueueCombi(subs: { clientId: string }[], packet: OutgoingPacket): Promise<void>;
    outgoingUpdate(client: ClientRef & object, packet: OutgoingPacket): Promise<void>;
    outgoingClearMessageId(client: ClientRef, packet: { messageId?: number }): Promise<Packet | undefined>;
    outgoingStream(client: ClientRef): Readable;
  };
  p.outgoingEnqueue = (sub, packet) => {
    enqueue(sub.clientId, packet);
    return Promise.resolve();
  };
  p.outgoingEnqueueCombi = (subs, packet) => {
    for (const sub of subs) enqueue(sub.clientId, packet);
    return Promise.resolve();
  };
  p.outgoingUpdate = (client, packet) => {
    update(client, packet);
    return Promise.resolve();
  };
  p.outgoingClearMessageId = (client, packet) => Promise.resolve(clear(client, packet));
  // A snapshot: messages queued after it go out live (the session's subscriptions are restored).
  p.outgoingStream = (client) => Readable.from([...(sessions.get(client.id)?.byMessage.values() ?? [])].map((q) => q.packet));
  return { persistence, unsent: (packet) => unsent.has(packet) };
}
