/**
 * The embedded cluster end to end: two `fleet coordinator start` processes, each with its embedded
 * Aedes broker clustered through one Redis (`--cluster-redis`), replicated on one PostgreSQL, sharing
 * the signing key, the operator token and the artifacts directory, behind a loopback load balancer for
 * the admin API and downloads. `fleet simulate` runs real agents given both nodes: each starts at the
 * node its id picks. A healthy rollout completes with devices on both nodes; the leader's process is
 * killed with SIGKILL mid-wave (its devices move to the other node, which takes over the rollout); a
 * bad release is caught and rolled back, every exposed device back (docs/embedded-cluster.md).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationReport } from '../../simulator/report.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { hasRedis, RedisServer } from '../support/redis.js';
import { waitFor } from '../support/wait-for.js';
import { startLeaderProxy, type LeaderProxy } from './leader-proxy.js';

const TOKEN = 'embedded-cluster-operator-token-8d2f4e61';
const DEVICES = 24;
/** The takeover bound of docs/replication.md: `FLEET_LEADER_LEASE_MS` (default 10 s) + `FLEET_LEADER_RETRY_MS`. */
const TAKEOVER_BOUND_MS = 10_000 + 250;

interface Node {
  name: string;
  process: RunningProcess;
  url: string;
  mqttUrl: string;
}

interface DeploymentView {
  id: string;
  firmwareVersion: string;
  phase: string;
  waves: { index: number; status: string; counts: Record<string, number> }[];
  rollback?: { exposed: number; confirmed: number; unreachable: number };
}

let dir = '';
let redis: RedisServer;
let store = '';
let proxy: LeaderProxy;
const nodes = new Map<string, Node>();

async function api<T>(base: string, path: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function deploymentOf(base: string, version: string): Promise<DeploymentView | undefined> {
  const list = await api<{ deployments: DeploymentView[] }>(base, '/v1/deployments?limit=20');
  return list.deployments.find((d) => d.firmwareVersion === version);
}

/** Devices connected to this node's embedded broker (its own clients only). */
async function connectionsOn(node: Node): Promise<number> {
  const res = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  const m = /^fleet_mqtt_connections (\d+)$/m.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

async function startNode(name: string): Promise<Node> {
  const p = spawnFleet(
    [
      'coordinator', 'start', '--data-dir', join(dir, name), '--replica-id', name,
      '--store', store, '--cluster-redis', redis.url, '--mqtt-port', '0', '--http-port', '0',
      '--signing-key', join(dir, 'keys', 'fleet.key'), '--artifacts-dir', join(dir, 'artifacts'),
      '--public-url', proxy.url, '--log-format', 'json', '--log-level', 'info',
    ],
    { env: { FLEET_ADMIN_TOKEN: TOKEN, FLEET_LEADER_RETRY_MS: '250', FLEET_CLUSTER_NODE: name } },
  );
  const line = await p.waitForLine(/coordinator started/, 60_000);
  const started = JSON.parse(line) as { httpUrl: string; mqttUrl: string };
  const node = { name, process: p, url: started.httpUrl, mqttUrl: started.mqttUrl };
  nodes.set(name, node);
  return node;
}

async function leader(): Promise<Node | undefined> {
  for (const n of nodes.values()) {
    if (n.process.exit) continue;
    const v = await api<{ role: string }>(n.url, '/v1/cluster').catch(() => undefined);
    if (v?.role === 'leader') return n;
  }
  return undefined;
}

function scenario(name: string, release: object): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name,
      description: 'a fleet spread over the nodes of an embedded cluster',
      seed: 9,
      fleet: { devices: DEVICES, hardware: [{ model: 'rpi4', share: 1 }] },
      // One 100% wave: no control cohort, so the hard limits decide, which two dozen devices can feed.
      rollout: { waves: [100], soak: '2s', telemetryInterval: '1s', deadline: '3m', rollbackDeadline: '2m' },
      releases: [release],
    }),
  );
  return file;
}

let lastRun: RunningProcess | undefined;
function simulate(file: string, report: string): RunningProcess {
  const brokers = [...nodes.values()].map((n) => n.mqttUrl).join(',');
  const p = spawnFleet(['simulate', '--scenario', file, '--broker', brokers, '--url', proxy.url, '--token', TOKEN, '--trust', join(dir, 'node-a', 'trust'), '--secrets', join(dir, 'secrets.json'), '--min-online', '1', '--report', report]);
  lastRun = p;
  return p;
}

async function finished(run: RunningProcess, report: string): Promise<SimulationReport> {
  // Bounded: a stalled rollout fails with the simulator's progress and the nodes' warnings.
  const exit = await Promise.race([run.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100_000))]);
  if (!exit) {
    const logs = [...nodes.values()].map((n) => `--- ${n.name}\n${n.process.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-40).join('\n')}`);
    throw new Error(`the simulation did not finish\n--- simulate\n${run.output().slice(-4000)}\n${logs.join('\n')}`);
  }
  expect(exit.code, run.output().slice(-4000)).toBe(0);
  return JSON.parse(readFileSync(report, 'utf8')) as SimulationReport;
}

/** Every device the engine tracked reported to the end: committed, none timed out or still in progress. */
function expectEveryStatusSeen(d: DeploymentView): void {
  for (const w of d.waves) expect({ wave: w.index, timedOut: w.counts['timedOut'] ?? 0, inProgress: w.counts['inProgress'] ?? 0 }).toEqual({ wave: w.index, timedOut: 0, inProgress: 0 });
  expect(d.waves.reduce((n, w) => n + (w.counts['committed'] ?? 0), 0)).toBe(DEVICES);
}

describe.skipIf(!hasRedis)('the embedded cluster: replicas with clustered embedded brokers', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-embedded-cluster-'));
    redis = await RedisServer.start();
    store = await freshPostgresUrl({ keep: true });
    proxy = await startLeaderProxy(() => [...nodes.values()].map((n) => n.url), TOKEN);
    const keygen = spawnFleet(['firmware', 'keygen', '--out', join(dir, 'keys'), '--name', 'fleet']);
    expect((await keygen.exited).code, keygen.output()).toBe(0);
    await startNode('node-a');
    await waitFor(() => leader(), 'node-a leads', 30_000);
    await startNode('node-b');
    // Provisioned through the balancer (the leader); node-b authenticates them from the store.
    const ids = Array.from({ length: DEVICES }, (_, i) => `ec-${String(i).padStart(2, '0')}`);
    const provision = spawnFleet(['devices', 'provision', ...ids, '--model', 'rpi4', '--out', join(dir, 'secrets.json'), '--url', proxy.url, '--token', TOKEN]);
    expect((await provision.exited).code, provision.output()).toBe(0);
  }, 120_000);

  afterAll(async () => {
    for (const n of nodes.values()) await n.process.stop('SIGKILL');
    await proxy?.close();
    await redis?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('completes a healthy rollout with devices on both nodes', { timeout: 120_000 }, async () => {
    const report = join(dir, 'healthy.json');
    const run = simulate(scenario('cluster-healthy', { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' }), report);
    // Each node holds some of the fleet: its own clients only.
    const spread = await waitFor(async () => {
      const counts = await Promise.all([...nodes.values()].map((n) => connectionsOn(n)));
      return counts.every((c) => c > 0) && counts.reduce((a, b) => a + b, 0) === DEVICES ? counts : undefined;
    }, 'the fleet connected over both nodes', 60_000, 100);
    console.log(`healthy: devices per node ${JSON.stringify(spread)}`);
    const r = await finished(run, report);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.1.0', 'completed', true]]);
    expect(r.releases[0]!.reach).toMatchObject({ onVersion: DEVICES });
    const d = (await deploymentOf(proxy.url, '1.1.0'))!;
    expect(d.phase).toBe('completed');
    expectEveryStatusSeen(d);
    // Any node serves any image from the shared artifacts directory: the balancer used both.
    expect(proxy.downloads.size).toBe(2);
  });

  it('catches a bad release on the cluster and brings every exposed device back', { timeout: 120_000 }, async () => {
    const report = join(dir, 'bad.json');
    const run = simulate(scenario('cluster-bad', { version: '1.3.0', behaviour: { kind: 'boot-loop', share: 1 }, expect: 'abort' }), report);
    await waitFor(async () => {
      const counts = await Promise.all([...nodes.values()].map((n) => connectionsOn(n)));
      return counts.every((c) => c > 0);
    }, 'devices on both nodes', 60_000, 100);
    const r = await finished(run, report);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.3.0', 'rolled-back', true]]);
    expect(r.releases[0]!.notBack).toEqual([]);
    const d = (await deploymentOf(proxy.url, '1.3.0'))!;
    expect(d.phase).toBe('rolled-back');
    expect(d.rollback!.exposed).toBeGreaterThan(0);
    expect(d.rollback).toMatchObject({ confirmed: d.rollback!.exposed, unreachable: 0 });
    console.log(`bad release: rolled back, ${JSON.stringify(d.rollback)}`);
    const devices = (await api<{ devices: { deviceId: string; runningVersion?: string }[] }>(proxy.url, `/v1/deployments/${d.id}/devices`)).devices;
    expect(devices.filter((x) => x.runningVersion === '1.3.0').map((x) => x.deviceId)).toEqual([]);
  });

  // Last: after this case the killed node runs again under a new broker id, and a fleet that then
  // reconnects with the same device ids can stall on the dead node's sessions and wills (noted in
  // docs/embedded-cluster.md); the cases before it run on a cluster no node of which has died.
  it('finishes a rollout whose leader process was killed mid-wave', { timeout: 120_000 }, async () => {
    const report = join(dir, 'mid-wave.json');
    const run = simulate(scenario('cluster-mid-wave', { version: '1.2.0', behaviour: { kind: 'healthy' }, expect: 'complete' }), report);
    const at = await waitFor(async () => {
      const l = await leader();
      const d = l && (await deploymentOf(l.url, '1.2.0').catch(() => undefined));
      const c = d?.waves[0]?.counts ?? {};
      const under = d?.phase === 'rolling' && (c['inProgress'] ?? 0) > 0 && (c['committed'] ?? 0) < (c['tracked'] ?? 0);
      return l && under && (await connectionsOn(l)) > 0 ? d : undefined;
    }, 'the wave under way with devices on the leader\'s node', 90_000, 50).catch((err: unknown) => {
      console.log(`--- simulate\n${lastRun?.output().slice(-3000)}`);
      throw err;
    });
    const killed = (await leader())!;
    const onKilled = await connectionsOn(killed);
    const killedAt = Date.now();
    await killed.process.stop('SIGKILL');
    nodes.delete(killed.name);
    const next = await waitFor(() => leader(), 'another node leads', 60_000, 50);
    const takeoverMs = Date.now() - killedAt;
    expect(next.name).not.toBe(killed.name);
    expect(takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);
    // The killed node's devices fail over: the survivor holds the whole fleet.
    await waitFor(async () => (await connectionsOn(next)) === DEVICES, 'every device on the surviving node', 60_000, 100);
    const movedMs = Date.now() - killedAt;
    console.log(`mid-wave: killed ${killed.name} with ${onKilled} devices (${JSON.stringify(at.waves[0]?.counts)}); ${next.name} led after ${takeoverMs} ms, held every device after ${movedMs} ms`);
    const r = await finished(run, report);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.2.0', 'completed', true]]);
    expect(r.releases[0]!.reach).toMatchObject({ onVersion: DEVICES });
    const d = (await deploymentOf(next.url, '1.2.0'))!;
    expect(d.phase).toBe('completed');
    expectEveryStatusSeen(d);
    // The killed node returns as a follower, on a new port.
    await startNode(killed.name);
  });
});
