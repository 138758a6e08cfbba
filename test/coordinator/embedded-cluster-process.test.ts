/**
 * `fleet coordinator start --cluster-redis` as a real process, next to a second embedded broker node
 * on the same redis-server: the coordinator's retained messages reach a device on the other node,
 * survive a Redis crash (published again when Redis comes back empty), the process stays up through
 * the outage and ends with 0 on SIGTERM even while Redis is down; without Redis it refuses to start
 * with one line saying what to do.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { CredentialStore } from '../../coordinator/broker/credentials.js';
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { EmbeddedBroker } from '../../coordinator/broker/embedded-broker.js';
import { Counters } from '../../coordinator/metrics.js';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { FLAGS_TOPIC } from '../../protocol/topics.js';
import { freePort, spawnFleet } from '../support/processes.js';
import { hasRedis, RedisServer } from '../support/redis.js';
import { silentLogger, uniqueId } from './helpers.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-cluster-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The retained flags message a device subscribing on `url` receives, as text. */
async function retainedFlags(url: string, deviceId: string, secret: string): Promise<string> {
  const c = await mqtt.connectAsync(url, { clientId: deviceId, username: deviceId, password: secret, reconnectPeriod: 0 });
  try {
    const got = new Promise<string>((resolve) => c.on('message', (_topic, payload) => resolve(payload.toString('utf8'))));
    await c.subscribeAsync(FLAGS_TOPIC, { qos: 1 });
    return await got;
  } finally {
    await c.endAsync(true);
  }
}

describe.skipIf(!hasRedis)('fleet coordinator start --cluster-redis', () => {
  it('shares its retained messages with the other node, across a Redis crash, and stops with 0 while Redis is down', { timeout: 90_000 }, async () => {
    const redis = await RedisServer.start();
    cleanups.push(() => redis.close());
    const p = spawnFleet(['coordinator', 'start', '--data-dir', join(scratch(), 'data'), '--mqtt-port', '0', '--http-port', '0', '--log-format', 'json', '--cluster-redis', redis.url]);
    cleanups.push(async () => void (await p.stop('SIGKILL')));
    await p.waitForLine(/"msg":"coordinator started"/, 30_000);
    expect(p.output()).toMatch(/"msg":"embedded broker clustered through Redis"/);

    // The other node: its own devices' credentials (one store per node here; replicas share theirs).
    const db = openDatabase(':memory:');
    cleanups.push(() => closeDatabase(db));
    const credentials = await CredentialStore.load(new SqliteSql(db));
    const node = new EmbeddedBroker({ port: 0, host: '127.0.0.1', credentials, allowAnonymous: false, hardwareModelOf: () => 'rpi4', logger: silentLogger, counters: new Counters(), cluster: { redisUrl: redis.url, nodeName: 'other' } });
    cleanups.push(() => node.stop());
    await node.start();
    const id = uniqueId('dev');
    const { secret } = await credentials.provision(id);
    // The flags the coordinator retained at its start, read through the other node.
    const flags = await retainedFlags(node.url, id, secret);
    expect(JSON.parse(flags)).toMatchObject({ kind: 'flags' });

    // Redis crashes and comes back empty: the coordinator stays up and publishes its retained messages again.
    await redis.kill();
    await p.waitForLine(/lost Redis/, 30_000);
    await redis.restart();
    await p.waitForLine(/"msg":"retained messages published again after the broker lost them"/, 30_000);
    expect(await retainedFlags(node.url, id, secret)).toBe(flags);
    expect(p.exit).toBeUndefined();

    // A stop while Redis is down is bounded and clean.
    await redis.kill();
    await p.waitForLine(/lost Redis/, 30_000);
    expect(await p.stop('SIGTERM', 30_000)).toEqual({ code: 0, signal: null });
  });

  it('refuses to start without its Redis, in one line', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const p = spawnFleet(['coordinator', 'start', '--data-dir', join(scratch(), 'data'), '--mqtt-port', '0', '--http-port', '0', '--cluster-redis', `redis://127.0.0.1:${port}`]);
    cleanups.push(async () => void (await p.stop('SIGKILL')));
    const exit = await p.exited;
    expect(exit.code).not.toBe(0);
    expect(p.output()).toMatch(new RegExp(`cannot reach Redis at redis://127.0.0.1:${port}.*start it or fix --cluster-redis`));
    expect(p.output()).not.toMatch(/\n\s+at /);
  });
});
