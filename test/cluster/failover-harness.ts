/**
 * What the failover tests of both replicated topologies share: two `fleet coordinator start` processes
 * on one PostgreSQL with one signing key, operator token and artifacts directory, behind a loopback
 * load balancer (leader-proxy.ts) that is also their `--public-url`; devices provisioned through it;
 * `fleet simulate` with real agents against the running replicas; the leader found, killed with
 * SIGKILL, and its successor timed. The topology (an external Mosquitto, or embedded brokers clustered
 * through Redis) is what each test passes: the replica's broker arguments and the simulator's brokers.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { SimulationReport } from '../../simulator/report.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';
import { startLeaderProxy, type LeaderProxy } from './leader-proxy.js';

export interface Replica {
  name: string;
  process: RunningProcess;
  url: string;
  /** Its embedded broker, where it has one. */
  mqttUrl?: string;
}

export interface DeploymentView {
  id: string;
  firmwareVersion: string;
  phase: string;
  waves: { index: number; status: string; counts: Record<string, number> }[];
  rollback?: { exposed: number; confirmed: number; unreachable: number };
}

export interface FailoverOptions {
  /** Prefix of the scratch directory, and of nothing else. */
  name: string;
  token: string;
  devices: number;
  /** Device ids are `<idPrefix>00`, `<idPrefix>01`, … */
  idPrefix: string;
  seed: number;
  /** The replica's broker arguments (`--broker …` or `--cluster-redis …`). */
  brokerArgs: (replica: string) => string[];
  /** The simulator's `--broker`, given the running replicas. */
  simulatorBrokers: (replicas: readonly Replica[]) => string;
  /** Added to each replica's environment. */
  env?: (replica: string) => Record<string, string>;
}

export class FailoverHarness {
  readonly replicas = new Map<string, Replica>();
  dir = '';
  proxy!: LeaderProxy;
  private store = '';
  private lastRun: RunningProcess | undefined;

  constructor(readonly o: FailoverOptions) {}

  /** Scratch directory, store, balancer and signing key; replica `first` leading, `second` following; the devices provisioned. */
  async start(first: string, second: string): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), `fleet-${this.o.name}-`));
    this.store = await freshPostgresUrl({ keep: true });
    this.proxy = await startLeaderProxy(() => [...this.replicas.values()].map((r) => r.url), this.o.token);
    const keygen = spawnFleet(['firmware', 'keygen', '--out', join(this.dir, 'keys'), '--name', 'fleet']);
    expect((await keygen.exited).code, keygen.output()).toBe(0);
    await this.startReplica(first);
    await waitFor(() => this.leader(), `${first} leads`, 30_000);
    await this.startReplica(second);
    // Provisioned through the balancer (the leader); the other replica reads them from the store.
    const ids = Array.from({ length: this.o.devices }, (_, i) => `${this.o.idPrefix}${String(i).padStart(2, '0')}`);
    const provision = spawnFleet(['devices', 'provision', ...ids, '--model', 'rpi4', '--out', join(this.dir, 'secrets.json'), '--url', this.proxy.url, '--token', this.o.token]);
    expect((await provision.exited).code, provision.output()).toBe(0);
  }

  async close(): Promise<void> {
    for (const r of this.replicas.values()) await r.process.stop('SIGKILL');
    await this.proxy?.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  async startReplica(name: string): Promise<Replica> {
    const p = spawnFleet(
      [
        'coordinator', 'start', '--data-dir', join(this.dir, name), '--replica-id', name, '--store', this.store,
        ...this.o.brokerArgs(name),
        '--signing-key', join(this.dir, 'keys', 'fleet.key'), '--artifacts-dir', join(this.dir, 'artifacts'),
        '--http-port', '0', '--public-url', this.proxy.url, '--log-format', 'json', '--log-level', 'info',
      ],
      { env: { FLEET_ADMIN_TOKEN: this.o.token, FLEET_LEADER_RETRY_MS: '250', ...this.o.env?.(name) } },
    );
    const started = JSON.parse(await p.waitForLine(/coordinator started/, 60_000)) as { httpUrl: string; mqttUrl?: string };
    const r: Replica = { name, process: p, url: started.httpUrl, ...(started.mqttUrl !== undefined ? { mqttUrl: started.mqttUrl } : {}) };
    this.replicas.set(name, r);
    return r;
  }

  async api<T>(base: string, path: string, method = 'GET'): Promise<T> {
    const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${this.o.token}` }, signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** The deployment of `version`, as `base` sees it. */
  async deploymentOf(base: string, version: string): Promise<DeploymentView | undefined> {
    const list = await this.api<{ deployments: DeploymentView[] }>(base, '/v1/deployments?limit=20');
    return list.deployments.find((d) => d.firmwareVersion === version);
  }

  async leader(): Promise<Replica | undefined> {
    for (const r of this.replicas.values()) {
      if (r.process.exit) continue;
      const v = await this.api<{ role: string }>(r.url, '/v1/cluster').catch(() => undefined);
      if (v?.role === 'leader') return r;
    }
    return undefined;
  }

  /**
   * Kills the leader with SIGKILL once `when` holds for the deployment of `version` (as the leader sees
   * it, with `also` true of the leader too); when, and the time until another replica led.
   */
  async killLeaderWhen(
    version: string,
    when: (d: DeploymentView) => boolean,
    what: string,
    also: (leader: Replica) => Promise<boolean> = () => Promise.resolve(true),
  ): Promise<{ killed: Replica; next: Replica; killedAt: number; takeoverMs: number; at: DeploymentView }> {
    const at = await waitFor(async () => {
      const l = await this.leader();
      const d = l && (await this.deploymentOf(l.url, version).catch(() => undefined));
      return l && d && when(d) && (await also(l)) ? d : undefined;
    }, what, 180_000, 50).catch((err: unknown) => {
      console.log(`--- simulate\n${this.lastRun?.output().slice(-3000)}`);
      throw err;
    });
    const killed = (await this.leader())!;
    const killedAt = Date.now();
    await killed.process.stop('SIGKILL');
    this.replicas.delete(killed.name);
    const next = await waitFor(() => this.leader(), 'another replica leads', 60_000, 50);
    expect(next.name).not.toBe(killed.name);
    return { killed, next, killedAt, takeoverMs: Date.now() - killedAt, at };
  }

  /** A scenario file of one release for the provisioned fleet. */
  scenario(name: string, release: object, rollout: { waves?: number[]; soak?: string; deadline?: string } = {}): string {
    const file = join(this.dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        name,
        description: `${this.o.name}: ${name}`,
        seed: this.o.seed,
        fleet: { devices: this.o.devices, hardware: [{ model: 'rpi4', share: 1 }] },
        // One 100% wave by default: no control cohort, so the hard limits decide, which two dozen devices can feed.
        rollout: { waves: [100], soak: '2s', telemetryInterval: '1s', deadline: '4m', rollbackDeadline: '2m', ...rollout },
        releases: [release],
      }),
    );
    return file;
  }

  /** `fleet simulate` of `scenario` against the running replicas, its report written to `report`. */
  simulate(scenario: string, report: string): RunningProcess {
    const brokers = this.o.simulatorBrokers([...this.replicas.values()]);
    const firstReplica = [...this.replicas.keys()][0]!;
    const p = spawnFleet(['simulate', '--scenario', scenario, '--broker', brokers, '--url', this.proxy.url, '--token', this.o.token, '--trust', join(this.dir, firstReplica, 'trust'), '--secrets', join(this.dir, 'secrets.json'), '--min-online', '1', '--report', report]);
    this.lastRun = p;
    return p;
  }

  /** The simulation's report once it ended with 0; bounded: a stall fails with its progress and the replicas' warnings. */
  async finished(run: RunningProcess, report: string, boundMs = 100_000): Promise<SimulationReport> {
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([run.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), boundMs)))]);
    clearTimeout(timer);
    if (!exit) {
      const logs = [...this.replicas.values()].map((r) => `--- ${r.name}\n${r.process.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-40).join('\n')}`);
      throw new Error(`the simulation did not finish\n--- simulate\n${run.output().slice(-4000)}\n${logs.join('\n')}`);
    }
    expect(exit.code, run.output().slice(-4000)).toBe(0);
    return JSON.parse(readFileSync(report, 'utf8')) as SimulationReport;
  }

  /** Every device the engine tracked reported to the end: all committed, none timed out or still in progress. */
  expectEveryStatusSeen(d: DeploymentView): void {
    for (const w of d.waves) expect({ wave: w.index, timedOut: w.counts['timedOut'] ?? 0, inProgress: w.counts['inProgress'] ?? 0 }).toEqual({ wave: w.index, timedOut: 0, inProgress: 0 });
    expect(d.waves.reduce((n, w) => n + (w.counts['committed'] ?? 0), 0)).toBe(this.o.devices);
  }

  /** Every exposed device confirmed its old version: none unreachable, none left on `version`. The deployment's devices. */
  async expectRolledBack(base: string, d: DeploymentView, version: string): Promise<{ deviceId: string; runningVersion?: string }[]> {
    expect(d.phase).toBe('rolled-back');
    expect(d.rollback!.exposed).toBeGreaterThan(0);
    expect(d.rollback).toMatchObject({ confirmed: d.rollback!.exposed, unreachable: 0 });
    const devices = (await this.api<{ devices: { deviceId: string; runningVersion?: string }[] }>(base, `/v1/deployments/${d.id}/devices`)).devices;
    expect(devices.filter((x) => x.runningVersion === version).map((x) => x.deviceId)).toEqual([]);
    return devices;
  }
}
