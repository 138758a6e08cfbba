/**
 * The failover test: two coordinator replicas (`fleet coordinator start`, real processes) on one
 * PostgreSQL and one Mosquitto with dynamic security, behind a loopback load balancer; a fleet of real
 * agents (`fleet simulate` against the running coordinators). The leader is killed with SIGKILL in the
 * middle of a wave, and in a second release in the middle of a rollback. The other replica takes over
 * within the bound of docs/replication.md, the rollout finishes (the rollback completes), every device
 * the engine tracked reported to the end (no acknowledged status lost, none timed out), and none is
 * left on the bad release.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationReport } from '../../simulator/report.js';
import { hasDynsec, startDynsecMosquitto, type DynsecMosquitto } from '../support/mosquitto-dynsec.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';
import { startLeaderProxy, type LeaderProxy } from './leader-proxy.js';

const TOKEN = 'failover-test-operator-token-5c1e9a7b';
const DEVICES = 24;

interface Replica {
  name: string;
  process: RunningProcess;
  url: string;
}

interface DeploymentView {
  id: string;
  firmwareVersion: string;
  phase: string;
  current: number;
  waves: { index: number; status: string; counts: Record<string, number> }[];
  rollback?: { exposed: number; confirmed: number; unreachable: number };
}

let dir = '';
let broker: DynsecMosquitto;
let store = '';
let proxy: LeaderProxy;
const replicas = new Map<string, Replica>();

/** The deployment of `version`, as `base` sees it. */
async function deploymentOf(base: string, version: string): Promise<DeploymentView | undefined> {
  const list = await api<{ deployments: DeploymentView[] }>(base, 'GET', '/v1/deployments?limit=20');
  return list.deployments.find((d) => d.firmwareVersion === version);
}

async function api<T>(base: string, method: string, path: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function startReplica(name: string): Promise<Replica> {
  const p = spawnFleet(
    [
      'coordinator', 'start', '--data-dir', join(dir, name), '--replica-id', name,
      '--store', store, '--broker', broker.url, '--broker-credentials', broker.accountFile,
      '--signing-key', join(dir, 'keys', 'fleet.key'), '--artifacts-dir', join(dir, 'artifacts'),
      '--http-port', '0', '--public-url', proxy.url, '--log-format', 'json', '--log-level', 'info',
    ],
    { env: { FLEET_ADMIN_TOKEN: TOKEN, FLEET_LEADER_RETRY_MS: '250' } },
  );
  const line = await p.waitForLine(/coordinator started/, 60_000);
  const url = (JSON.parse(line) as { httpUrl: string }).httpUrl;
  const r = { name, process: p, url };
  replicas.set(name, r);
  return r;
}

async function leader(): Promise<Replica | undefined> {
  for (const r of replicas.values()) {
    if (r.process.exit) continue;
    const v = await api<{ role: string }>(r.url, 'GET', '/v1/cluster').catch(() => undefined);
    if (v?.role === 'leader') return r;
  }
  return undefined;
}

/** Kills the leader with SIGKILL once `when` holds for the deployment; the time until another leads. */
async function killLeaderWhen(version: string, when: (d: DeploymentView) => boolean, what: string): Promise<{ killed: Replica; takeoverMs: number; at: DeploymentView }> {
  const at = await waitFor(async () => {
    const l = await leader();
    if (!l) return undefined;
    const d = await deploymentOf(l.url, version).catch(() => undefined);
    return d && when(d) ? d : undefined;
  }, what, 180_000, 50).catch((err: unknown) => {
    console.log(`--- simulate\n${lastRun?.output().slice(-3000)}`);
    throw err;
  });
  const killed = (await leader())!;
  const killedAt = Date.now();
  await killed.process.stop('SIGKILL');
  replicas.delete(killed.name);
  const next = await waitFor(() => leader(), 'another replica leads', 60_000, 50);
  expect(next.name).not.toBe(killed.name);
  return { killed, takeoverMs: Date.now() - killedAt, at };
}

function scenario(name: string, release: object, waves: number[], soak = '2s'): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name,
      description: 'failover of the coordinator leader',
      seed: 7,
      fleet: { devices: DEVICES, hardware: [{ model: 'rpi4', share: 1 }] },
      rollout: { waves, soak, telemetryInterval: '1s', deadline: '4m', rollbackDeadline: '2m' },
      releases: [release],
    }),
  );
  return file;
}

let lastRun: RunningProcess | undefined;
function simulate(file: string, report: string): RunningProcess {
  const p = spawnFleet(['simulate', '--scenario', file, '--broker', broker.url, '--url', proxy.url, '--token', TOKEN, '--trust', join(dir, 'replica-a', 'trust'), '--secrets', join(dir, 'secrets.json'), '--min-online', '1', '--report', report]);
  lastRun = p;
  return p;
}

describe.skipIf(!hasDynsec)('replicated coordinators: failover', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-failover-'));
    broker = await startDynsecMosquitto({ maxQueuedMessages: 100_000 });
    store = await freshPostgresUrl({ keep: true });
    proxy = await startLeaderProxy(() => [...replicas.values()].map((r) => r.url), TOKEN);
    const keygen = spawnFleet(['firmware', 'keygen', '--out', join(dir, 'keys'), '--name', 'fleet']);
    expect((await keygen.exited).code, keygen.output()).toBe(0);
    await startReplica('replica-a');
    await waitFor(() => leader(), 'replica-a leads', 30_000);
    await startReplica('replica-b');
    const ids = Array.from({ length: DEVICES }, (_, i) => `fo-${String(i).padStart(2, '0')}`);
    const provision = spawnFleet(['devices', 'provision', ...ids, '--model', 'rpi4', '--out', join(dir, 'secrets.json'), '--url', proxy.url, '--token', TOKEN]);
    expect((await provision.exited).code, provision.output()).toBe(0);
  }, 120_000);

  afterAll(async () => {
    for (const r of replicas.values()) await r.process.stop('SIGKILL');
    await proxy?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finishes a rollout whose leader was killed mid-wave', { timeout: 300_000 }, async () => {
    const report = join(dir, 'mid-wave.json');
    const run = simulate(scenario('failover-mid-wave', { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' }, [100]), report);
    // The wave is rolling: devices have started reporting, not all have committed.
    const under = (d: DeploymentView): boolean => {
      const c = d.waves[0]?.counts ?? {};
      return d.phase === 'rolling' && (c['inProgress'] ?? 0) > 0 && (c['committed'] ?? 0) < (c['tracked'] ?? 0);
    };
    const { killed, takeoverMs, at } = await killLeaderWhen('1.1.0', under, 'the wave under way');
    console.log(`mid-wave: killed ${killed.name} (${JSON.stringify(at.waves[0]?.counts)}); another replica led after ${takeoverMs} ms`);
    const exit = await run.exited;
    expect(exit.code, run.output()).toBe(0);
    const r = JSON.parse(readFileSync(report, 'utf8')) as SimulationReport;
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.1.0', 'completed', true]]);
    expect(r.releases[0]!.reach).toMatchObject({ onVersion: DEVICES });
    const l = (await leader())!;
    const d = (await deploymentOf(l.url, '1.1.0'))!;
    expect(d.phase).toBe('completed');
    // Every status was seen: no device timed out or is still in progress in the engine.
    for (const w of d.waves) expect({ wave: w.index, timedOut: w.counts['timedOut'] ?? 0, inProgress: w.counts['inProgress'] ?? 0 }).toEqual({ wave: w.index, timedOut: 0, inProgress: 0 });
    expect(d.waves.reduce((n, w) => n + (w.counts['committed'] ?? 0), 0)).toBe(DEVICES);
    // The killed replica returns as a follower.
    await startReplica(killed.name);
  });

  it('completes a rollback whose leader was killed mid-rollback', { timeout: 300_000 }, async () => {
    const report = join(dir, 'mid-rollback.json');
    // A release every device takes; the operator rolls it back half way.
    const run = simulate(scenario('failover-mid-rollback', { version: '1.2.0', behaviour: { kind: 'healthy' }, expect: 'complete' }, [100], '5m'), report);
    // Half the fleet has committed the release: the operator rolls it back.
    const rolling = await waitFor(async () => {
      const l = await leader();
      const d = l && (await deploymentOf(l.url, '1.2.0').catch(() => undefined));
      return d && d.phase === 'rolling' && (d.waves[0]?.counts['committed'] ?? 0) >= DEVICES / 2 ? d : undefined;
    }, 'half the fleet on 1.2.0', 180_000, 50);
    const res = await fetch(`${proxy.url}/v1/deployments/${rolling.id}/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'rollback', reason: 'failover test' }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const { killed, takeoverMs, at } = await killLeaderWhen('1.2.0', (d) => d.phase === 'rolling-back' && (d.rollback?.confirmed ?? 0) < (d.rollback?.exposed ?? 0), 'the rollback under way');
    console.log(`mid-rollback: killed ${killed.name} (${JSON.stringify(at.rollback)}); another replica led after ${takeoverMs} ms`);
    await run.exited;
    const l = (await leader())!;
    const d = (await deploymentOf(l.url, '1.2.0'))!;
    expect(d.id).toBe(rolling.id);
    expect(d.phase).toBe('rolled-back');
    // Every exposed device confirmed its old version: none left on the release, none unreachable (the
    // simulated fleet of each run starts on the scenario's base version).
    expect(d.rollback!.exposed).toBeGreaterThan(0);
    expect(d.rollback).toMatchObject({ confirmed: d.rollback!.exposed, unreachable: 0 });
    const devices = (await api<{ devices: { deviceId: string; runningVersion?: string }[] }>(l.url, 'GET', `/v1/deployments/${d.id}/devices`)).devices;
    expect(devices).toHaveLength(DEVICES);
    expect(devices.filter((x) => x.runningVersion === '1.2.0').map((x) => x.deviceId)).toEqual([]);
  });
});
