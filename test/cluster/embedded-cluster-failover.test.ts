/**
 * The embedded cluster end to end: two `fleet coordinator start` processes, each with its embedded
 * Aedes broker clustered through one Redis (`--cluster-redis`), replicated on one PostgreSQL, sharing
 * the signing key, the operator token and the artifacts directory, behind a loopback load balancer for
 * the admin API and downloads (failover-harness.ts, shared with the Mosquitto topology's test). `fleet
 * simulate` runs real agents given both nodes: each starts at the node its id picks. A healthy rollout
 * completes with devices on both nodes; the leader's process is killed with SIGKILL mid-wave (its
 * devices move to the other node, which takes over the rollout) and started again; then a new fleet
 * with the same device ids gets a bad release, which is caught and rolled back, every exposed device
 * back (docs/embedded-cluster.md).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasRedis, RedisServer } from '../support/redis.js';
import { waitFor } from '../support/wait-for.js';
import { FailoverHarness, type Replica } from './failover-harness.js';

const TOKEN = 'embedded-cluster-operator-token-8d2f4e61';
const DEVICES = 24;
/** The takeover bound of docs/replication.md: `FLEET_LEADER_LEASE_MS` (default 10 s) + `FLEET_LEADER_RETRY_MS`. */
const TAKEOVER_BOUND_MS = 10_000 + 250;

let redis: RedisServer;
const h = new FailoverHarness({
  name: 'embedded-cluster',
  token: TOKEN,
  devices: DEVICES,
  idPrefix: 'ec-',
  seed: 9,
  brokerArgs: () => ['--cluster-redis', redis.url, '--mqtt-port', '0'],
  env: (name) => ({ FLEET_CLUSTER_NODE: name }),
  simulatorBrokers: (nodes) => nodes.map((n) => n.mqttUrl).join(','),
});

/** Devices connected to this node's embedded broker (its own clients only). */
async function connectionsOn(node: Replica): Promise<number> {
  const res = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  const m = /^fleet_mqtt_connections (\d+)$/m.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

const connections = (): Promise<number[]> => Promise.all([...h.replicas.values()].map((n) => connectionsOn(n)));

describe.skipIf(!hasRedis)('the embedded cluster: replicas with clustered embedded brokers', () => {
  beforeAll(async () => {
    redis = await RedisServer.start();
    await h.start('node-a', 'node-b');
  }, 120_000);

  afterAll(async () => {
    await h.close();
    await redis?.close();
  });

  it('completes a healthy rollout with devices on both nodes', { timeout: 120_000 }, async () => {
    const report = join(h.dir, 'healthy.json');
    const run = h.simulate(h.scenario('cluster-healthy', { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' }), report);
    // Each node holds some of the fleet: its own clients only.
    const spread = await waitFor(async () => {
      const counts = await connections();
      return counts.every((c) => c > 0) && counts.reduce((a, b) => a + b, 0) === DEVICES ? counts : undefined;
    }, 'the fleet connected over both nodes', 60_000, 100);
    console.log(`healthy: devices per node ${JSON.stringify(spread)}`);
    const r = await h.finished(run, report);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.1.0', 'completed', true]]);
    expect(r.releases[0]!.reach).toMatchObject({ onVersion: DEVICES });
    const d = (await h.deploymentOf(h.proxy.url, '1.1.0'))!;
    expect(d.phase).toBe('completed');
    h.expectEveryStatusSeen(d);
    // Any node serves any image from the shared artifacts directory: the balancer used both.
    expect(h.proxy.downloads.size).toBe(2);
  });

  it('finishes a rollout whose leader process was killed mid-wave', { timeout: 120_000 }, async () => {
    const report = join(h.dir, 'mid-wave.json');
    const run = h.simulate(h.scenario('cluster-mid-wave', { version: '1.2.0', behaviour: { kind: 'healthy' }, expect: 'complete' }), report);
    const { killed, next, killedAt, takeoverMs, at } = await h.killLeaderWhen(
      '1.2.0',
      (d) => {
        const c = d.waves[0]?.counts ?? {};
        return d.phase === 'rolling' && (c['inProgress'] ?? 0) > 0 && (c['committed'] ?? 0) < (c['tracked'] ?? 0);
      },
      "the wave under way with devices on the leader's node",
      async (leader) => (await connectionsOn(leader)) > 0,
    );
    expect(takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);
    // The killed node's devices fail over: the survivor holds the whole fleet.
    await waitFor(async () => (await connectionsOn(next)) === DEVICES, 'every device on the surviving node', 60_000, 100);
    console.log(`mid-wave: killed ${killed.name} (${JSON.stringify(at.waves[0]?.counts)}); ${next.name} led after ${takeoverMs} ms, held every device after ${Date.now() - killedAt} ms`);
    const r = await h.finished(run, report);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.2.0', 'completed', true]]);
    expect(r.releases[0]!.reach).toMatchObject({ onVersion: DEVICES });
    const d = (await h.deploymentOf(next.url, '1.2.0'))!;
    expect(d.phase).toBe('completed');
    h.expectEveryStatusSeen(d);
    // The killed node returns as a follower, on a new port and under a new broker id.
    await h.startReplica(killed.name);
  });

  // After the kill: the restarted node, the dead node's sessions and wills, the same device ids.
  it('catches a bad release after a node was killed and restarted and brings every exposed device back', { timeout: 120_000 }, async () => {
    const report = join(h.dir, 'bad.json');
    const run = h.simulate(h.scenario('cluster-bad', { version: '1.3.0', behaviour: { kind: 'boot-loop', share: 1 }, expect: 'abort' }), report);
    await waitFor(async () => (await connections()).every((c) => c > 0), 'devices on both nodes', 60_000, 100);
    const r = await h.finished(run, report);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.3.0', 'rolled-back', true]]);
    expect(r.releases[0]!.notBack).toEqual([]);
    const d = (await h.deploymentOf(h.proxy.url, '1.3.0'))!;
    await h.expectRolledBack(h.proxy.url, d, '1.3.0');
    console.log(`bad release: rolled back, ${JSON.stringify(d.rollback)}`);
  });
});
