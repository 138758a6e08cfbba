/**
 * What clusters embedded brokers through one Redis: the Aedes project's own `mqemitter-redis` (every
 * message fanned out to every node, which delivers it to its own clients) and `aedes-persistence-redis`
 * (sessions, subscriptions, retained messages, QoS 1 queues and last wills, shared by every node).
 * I/O adapter.
 *
 * We open the three Redis connections ourselves so that an outage is ours to see: each connection
 * logs (once per outage) and counts its errors, and reconnects with ioredis's backoff. Meanwhile the
 * nodes keep their own clients and still ingest what those clients send (ingest runs before any Redis
 * call), but routing waits: commands queue in ioredis and fail after `maxRetriesPerRequest` reconnect
 * attempts (about ten seconds), which fails the publish or the session lookup that needed them.
 * A Redis that comes back empty (restarted without persistence) has lost every retained manifest;
 * the first node to notice runs `onReset` so that the coordinator publishes them again from its store.
 *
 * Redis also holds which node each device is connected to (`holderOf`), so that a last will never
 * reports a device offline that is connected now on another node (see `connectionRegistry`).
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { AedesPersistence } from 'aedes-persistence';
import { errorMessage, FleetError } from '@fleet/protocol/errors';
import type { Counters } from '../metrics.js';

const require = createRequire(import.meta.url);
/** CommonJS factories (the persistence ships no typings of its own). */
const redisPersistence = require('aedes-persistence-redis') as (options: { conn: Redis }) => AedesPersistence;
const MQEmitterRedis = require('mqemitter-redis') as (options: Record<string, unknown>) => ClusterEmitter;

/** What Aedes and we use of mqemitter-redis. */
interface ClusterEmitter {
  state: { on(event: 'error', listener: (err: Error) => void): void };
  close(cb: () => void): void;
}

/** Present in Redis while it holds the cluster's state; gone after Redis lost its data. */
const SENTINEL_KEY = 'fleet:cluster:sentinel';
/** How long start waits for Redis before it refuses to run. */
const CONNECT_TIMEOUT_MS = 10_000;
/** How long a stop waits for Redis to answer QUIT before it drops the connections. */
const CLOSE_TIMEOUT_MS = 3_000;
/** Hash: device (client) id → the broker id of the node it is connected to now. */
const CONNECTIONS_KEY = 'fleet:cluster:connections';
/** Deletes a device's entry only if it still names this node (a newer connection elsewhere stays). */
const RELEASE_SCRIPT = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

export interface RedisClusterOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). One Redis per cluster. */
  url: string;
  /** A readable prefix for this node's broker id (default `node`); a random suffix keeps it unique. */
  nodeName?: string;
  logger: Logger;
  counters: Counters;
}

export interface RedisCluster {
  /**
   * This node's Aedes id: unique per process run. Aedes numbers its packets from 0 at every start and
   * stores queued messages under id + number, so an id reused after a restart would overwrite messages
   * still queued for offline devices.
   */
  readonly brokerId: string;
  readonly persistence: AedesPersistence;
  readonly mq: ClusterEmitter;
  /**
   * The broker id of the node `clientId` is connected to now, per the cluster's connection registry;
   * undefined when it is connected nowhere (or Redis cannot say). A last will stored by any other
   * broker id is stale: the device came back since.
   */
  holderOf(clientId: string): Promise<string | undefined>;
  /** Called when Redis came back without the cluster's state; only a node with a handler claims it. */
  onReset(handler: () => void): void;
  /** Closes the connections (after Aedes closed); bounded even while Redis is down. Safe twice. */
  close(): Promise<void>;
}

/** Connects to Redis and builds the shared persistence and emitter. Refuses to start without Redis. */
export async function connectRedisCluster(options: RedisClusterOptions): Promise<RedisCluster> {
  const log = options.logger.child({ redis: redactedUrl(options.url) });
  const counters = options.counters;
  const brokerId = `${options.nodeName ?? 'node'}-${randomUUID().slice(0, 8)}`;
  const connections: Redis[] = [];
  let resetHandler: (() => void) | undefined;
  let started = false;
  let closed = false;

  const open = (role: 'store' | 'publish' | 'subscribe'): Redis => {
    const redisOptions: RedisOptions = { connectionName: `fleet-${brokerId}-${role}`, lazyConnect: true };
    const conn = new Redis(options.url, redisOptions);
    let down = false;
    conn.on('error', (err: Error) => {
      counters.inc('cluster.redis.errors');
      if (down || closed) return;
      down = true;
      log.error({ role, err: errorMessage(err) }, 'lost Redis: routing between nodes waits, local devices stay connected; reconnecting');
    });
    conn.on('reconnecting', () => counters.inc('cluster.redis.reconnects'));
    conn.on('ready', () => {
      if (!down) return;
      down = false;
      log.warn({ role }, 'Redis is back');
    });
    connections.push(conn);
    return conn;
  };

  const store = open('store');
  const pubConn = open('publish');
  const subConn = open('subscribe');
  const dropAll = (): void => {
    closed = true;
    for (const c of connections) c.disconnect();
  };
  try {
    await withTimeout(Promise.all(connections.map((c) => c.connect())), CONNECT_TIMEOUT_MS);
    await store.set(SENTINEL_KEY, brokerId, 'NX');
  } catch (err) {
    dropAll();
    throw new FleetError('cluster-redis', `cannot reach Redis at ${redactedUrl(options.url)}: ${errorMessage(err)}; start it or fix --cluster-redis`);
  }
  // A sentinel missing after a reconnect: Redis restarted empty. The first node with a reset handler
  // to set it again runs it (one restore is enough: the retained store is shared).
  store.on('ready', () => {
    if (!started || closed || !resetHandler) return;
    store.set(SENTINEL_KEY, brokerId, 'NX').then(
      (set) => {
        if (set !== 'OK') return;
        counters.inc('cluster.redis.resets');
        log.warn({}, 'Redis came back without the cluster state (restarted without persistence): publishing retained messages again');
        resetHandler?.();
      },
      (err: unknown) => log.warn({ err: errorMessage(err) }, 'cannot check Redis for lost state'),
    );
  });
  started = true;

  const mq = MQEmitterRedis({ subConn: observed(subConn), pubConn: observed(pubConn), concurrency: 100, matchEmptyLevels: true });
  // Unhandled, mqemitter's own error event would throw; the connections above already log and count.
  mq.state.on('error', (err) => log.debug({ err: err.message }, 'cluster emitter error'));
  const holderOf = async (clientId: string): Promise<string | undefined> => {
    try {
      return (await store.hget(CONNECTIONS_KEY, clientId)) ?? undefined;
    } catch (err) {
      log.debug({ clientId, err: errorMessage(err) }, 'cannot read the connection registry');
      return undefined;
    }
  };
  const persistence = connectionRegistry(oneStorePerSubscribe(redisPersistence({ conn: observed(store) })), { store: observed(store), holderOf, log, counters });
  log.info({ brokerId }, 'embedded broker clustered through Redis');

  return {
    brokerId,
    persistence,
    mq,
    holderOf,
    onReset(handler) {
      resetHandler = handler;
    },
    async close() {
      if (closed) return;
      closed = true;
      // The persistence unsubscribes from the emitter and disconnects its connection; the emitter's
      // connections were quit by Aedes's close. Bounded: a Redis that is down never answers.
      await withTimeout((persistence as unknown as { destroy(): Promise<void> }).destroy(), CLOSE_TIMEOUT_MS).catch((err: unknown) =>
        log.debug({ err: errorMessage(err) }, 'cluster persistence closed uncleanly'),
      );
      for (const c of connections) c.disconnect();
    },
  };
}

/**
 * The persistence with one store per SUBSCRIBE packet. Aedes (1.2) calls `addSubscriptions(client,
 * packet.subscriptions)` once per topic of the packet, concurrently, each time with the whole list;
 * aedes-persistence-redis then waits for its own `$SYS/sub/add` broadcast to come back, keyed by
 * client and first topic, one waiter per key: every call but the last waits forever, so a SUBSCRIBE
 * of several topics (an agent's rollout, commands and flags) never got its SUBACK and most of its
 * topics never reached the node's routing. Concurrent calls with the same list share the first one.
 */
function oneStorePerSubscribe(persistence: AedesPersistence): AedesPersistence {
  // The typings describe the callback interface; Aedes 1.x and this persistence use promises.
  const p = persistence as unknown as { addSubscriptions(client: unknown, subs: object): Promise<void> };
  const store = p.addSubscriptions.bind(p);
  const inFlight = new WeakMap<object, Promise<void>>();
  p.addSubscriptions = (client, subs) => {
    const running = inFlight.get(subs);
    if (running) return running;
    const stored = store(client, subs).finally(() => inFlight.delete(subs));
    inFlight.set(subs, stored);
    return stored;
  };
  return persistence;
}

interface WillPacket {
  clientId: string;
  brokerId: string;
}

/** The will's device and the broker that stored it (aedes-persistence-redis adds both), if it is one. */
export function willOrigin(packet: object): WillPacket | undefined {
  const p = packet as Partial<Record<keyof WillPacket, unknown>>;
  return typeof p.clientId === 'string' && typeof p.brokerId === 'string' ? { clientId: p.clientId, brokerId: p.brokerId } : undefined;
}

/** The subset of Aedes the registry uses. */
interface BrokerEvents {
  id: string;
  on(event: 'client' | 'clientDisconnect', listener: (client: { id: string }) => void): void;
  publish(packet: { topic: string; payload: Buffer }, done: (err?: Error) => void): void;
}

/**
 * The persistence with a cluster-wide registry of connections, and with the last wills of devices
 * that reconnected elsewhere dropped unpublished.
 *
 * Aedes stores a will under the broker the device is on, and deletes on CONNECT only the will of the
 * node the device connects to. A device whose node died and that reconnected to another node
 * therefore leaves its old will behind, and once the dead node is missed (three heartbeats) a
 * surviving node publishes it: the device, online on its new node, is reported offline until it
 * speaks again. Each node records its devices in one Redis hash
 * when Aedes registers them (before it tells other nodes to drop an older connection of the same id)
 * and removes them when they go, only if the entry still names it. The will stream skips, and
 * deletes, every will whose device is connected now under another broker id.
 */
function connectionRegistry(
  persistence: AedesPersistence,
  o: { store: Redis; holderOf(clientId: string): Promise<string | undefined>; log: Logger; counters: Counters },
): AedesPersistence {
  const p = persistence as unknown as {
    setup(broker: BrokerEvents): Promise<void>;
    streamWill(brokers: object): AsyncIterable<object>;
    delWill(client: { id: string; brokerId: string }): Promise<unknown>;
  };
  const setup = p.setup.bind(p);
  const streamWill = p.streamWill.bind(p);
  // Aedes checks that setup is an async function (its constructor's name).
  p.setup = async (broker) => {
    await setup(broker);
    // Aedes counts a node alive from its first heartbeat, a full interval after it starts (its birth
    // message does not count): until then a surviving node's will check took every will the new
    // node stored for a device connecting to it for a dead node's, and published it. Said at once.
    broker.publish({ topic: `$SYS/${broker.id}/heartbeat`, payload: Buffer.from(broker.id, 'utf8') }, () => undefined);
    broker.on('client', (client) => void o.store.hset(CONNECTIONS_KEY, client.id, broker.id));
    broker.on('clientDisconnect', (client) => void o.store.eval(RELEASE_SCRIPT, 1, CONNECTIONS_KEY, client.id, broker.id));
  };
  p.streamWill = (brokers) =>
    (async function* current(): AsyncGenerator<object> {
      for await (const will of streamWill(brokers)) {
        const origin = willOrigin(will);
        const holder = origin && (await o.holderOf(origin.clientId));
        if (!origin || holder === undefined || holder === origin.brokerId) {
          yield will;
          continue;
        }
        o.counters.inc('cluster.wills.stale');
        o.log.info({ deviceId: origin.clientId, willOf: origin.brokerId, connectedTo: holder }, 'last will of a device connected on another node dropped');
        await p.delWill({ id: origin.clientId, brokerId: origin.brokerId });
      }
      o.counters.inc('cluster.wills.checks');
    })();
  return persistence;
}

/**
 * The connection with every command's failure observed: aedes-persistence-redis leaves some commands'
 * promises floating (a will's LREM and RPUSH, a stale key's LREM), mqemitter-redis its QUITs, and one
 * that fails while Redis is down would be an unhandled rejection, which ends the process. A caller that awaits a command still
 * sees its failure; the connection's error event has counted and logged the outage already.
 */
function observed(conn: Redis): Redis {
  return new Proxy(conn, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) result.catch(() => undefined);
        return result;
      };
    },
  });
}

/** The URL without its password, for logs and errors. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'an unparsable URL';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
