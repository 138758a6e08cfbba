import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import type { Clock } from '../../protocol/clock.js';
import { ManualClock } from '../support/manual-clock.js';
import type { RolloutMessage, StatusMessage } from '../../protocol/messages.js';
import type { UpdateReason } from '../../protocol/reasons.js';
import type { UpdateState } from '../../protocol/update-state.js';
import { SqlDeploymentRepository } from '../../coordinator/deployments/deployment-repo.js';
import { openPostgresStore, openSqliteStore } from '../../coordinator/store/open-store.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { freshPostgresUrl, STORE_KINDS, type StoreKind } from '../support/postgres.js';
import { DeploymentActionError, DeploymentConflictError, DeploymentNotFoundError, EFFECT_RETRY_MS, EngineRunner } from '../../coordinator/engine/engine-runner.js';
import { defaultWaves } from '../../coordinator/engine/deployment-spec.js';
import { bucketsOfWave } from '../../coordinator/engine/wave-plan.js';
import { hardGatesAnalyzer } from '../../coordinator/gate/hard-gates.js';
import type { GateAnalyzer } from '../../coordinator/gate/analyzer.js';
import { snapshotFromProgress } from '../../coordinator/engine/snapshot.js';
import { createAnalyzersFor, type FlagEvaluator } from '../../coordinator/canary/analyzers-for.js';
import { DEFAULT_FLAGS, evaluateFlag } from '../../coordinator/flags/flag-model.js';
import type { CanarySnapshot, DeviceSummary } from '../../protocol/canary.js';
import type { AuditEntry, CommandRequest, DeploymentPhase, DeploymentSpec, DeploymentState, EffectSink, WaveDirectory, WaveMember } from '../../coordinator/engine/types.js';
import { hello, HOUR, makeSpec, MIN, T0 } from './engine-fixtures.js';

/** Carries out effects in memory: retained topics, commands and audit entries (no broker here). */
class MemorySink implements EffectSink {
  readonly retained = new Map<string, RolloutMessage>();
  readonly commands: CommandRequest[] = [];
  readonly audits: AuditEntry[] = [];
  failPublishes = 0;
  publishRollout(model: string, buckets: readonly number[], message: RolloutMessage): Promise<void> {
    if (this.failPublishes > 0) {
      this.failPublishes--;
      return Promise.reject(new Error('broker unreachable'));
    }
    for (const b of buckets) this.retained.set(`${model}/${b}`, message);
    return Promise.resolve();
  }
  clearRollout(model: string, buckets: readonly number[]): Promise<void> {
    for (const b of buckets) this.retained.delete(`${model}/${b}`);
    return Promise.resolve();
  }
  sendCommand(command: CommandRequest): Promise<void> {
    this.commands.push(command);
    return Promise.resolve();
  }
  audit(entry: AuditEntry): void {
    this.audits.push(entry);
  }
}

type Behaviour = 'good' | 'trial-fails' | 'silent' | 'offline';

interface SimDevice {
  id: string;
  bucket: number;
  version: string;
  online: boolean;
  behaviour: Behaviour;
  seq: number;
  took?: string;
  handledCommands: Set<string>;
}

/** A tiny fleet that reacts to retained manifests and commands the way agents do. */
class Fleet implements WaveDirectory {
  readonly devices: SimDevice[];
  constructor(n: number, behaviour: (i: number) => Behaviour = () => 'good') {
    this.devices = Array.from({ length: n }, (_, i) => {
      const id = `dev-${i}`;
      const b = behaviour(i);
      return { id, bucket: bucketOf(id), version: '1.0.0', online: b !== 'offline', behaviour: b, seq: 0, handledCommands: new Set() };
    });
  }
  members(_spec: DeploymentSpec, buckets: readonly number[]): WaveMember[] {
    const set = new Set(buckets);
    return this.devices
      .filter((d) => set.has(d.bucket) && d.version === '1.0.0')
      .map((d) => ({ deviceId: d.id, bucket: d.bucket, hardwareModel: 'm1', firmwareVersion: d.version, online: d.online }));
  }
  private status(d: SimDevice, deploymentId: string, state: UpdateState, now: number, reason?: UpdateReason): StatusMessage {
    d.seq++;
    return { v: 1, kind: 'status', deviceId: d.id, deploymentId, state, fromVersion: '1.0.0', toVersion: '2.0.0', ...(reason ? { reason } : {}), seq: d.seq, at: now };
  }
  /** Every online device (of `devices`, default all) acts on its bucket's retained manifest and its commands. */
  act(runner: EngineRunner, sink: MemorySink, now: number, devices: readonly SimDevice[] = this.devices): void {
    for (const d of devices) {
      if (!d.online) continue;
      const m = sink.retained.get(`m1/${d.bucket}`);
      if (m && d.took !== m.deploymentId && d.version === '1.0.0') {
        d.took = m.deploymentId;
        for (const s of ['downloading', 'verifying', 'installing', 'rebooting'] as const) runner.onStatus(this.status(d, m.deploymentId, s, now));
        if (d.behaviour === 'silent') {
          d.online = false; // rebooted into an image that never comes back
          continue;
        }
        if (d.behaviour === 'trial-fails') {
          runner.onStatus(this.status(d, m.deploymentId, 'rolled-back', now, 'trial-boot-failed'));
          continue;
        }
        runner.onStatus(this.status(d, m.deploymentId, 'trial', now));
        d.version = '2.0.0';
        runner.onStatus(this.status(d, m.deploymentId, 'committed', now));
      }
      for (const c of sink.commands) {
        if (c.deviceId !== d.id || d.handledCommands.has(c.commandId)) continue;
        d.handledCommands.add(c.commandId);
        if (d.version === '2.0.0') {
          runner.onStatus(this.status(d, c.deploymentId, 'rolling-back', now, 'rollback-command'));
          d.version = '1.0.0';
          runner.onStatus(this.status(d, c.deploymentId, 'rolled-back', now, 'rollback-command'));
        }
      }
    }
  }
}

let dir: string;
let store: Sql;
/** Opens the test's store again (a new process on the same file or database). */
let openAgain: () => Promise<Sql>;
let clock: ManualClock;
let sink: MemorySink;
const runners: EngineRunner[] = [];

async function openStoreOf(kind: StoreKind): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'fleet-engine-runner-'));
  if (kind === 'sqlite') {
    openAgain = () => Promise.resolve(openSqliteStore(join(dir, 'fleet.db')));
  } else {
    const url = await freshPostgresUrl({ keep: true });
    openAgain = () => openPostgresStore(url);
  }
  store = await openAgain();
  clock = new ManualClock(T0);
  sink = new MemorySink();
}

afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const repoOf = (): SqlDeploymentRepository => new SqlDeploymentRepository(store);

async function newRunner(fleet: Fleet, extra: Partial<Parameters<typeof EngineRunner.create>[0]> = {}): Promise<EngineRunner> {
  const r = await EngineRunner.create({ repo: repoOf(), sink, clock, directory: fleet, ...extra });
  runners.push(r);
  return r;
}

const spec20 = (id = 'dep-1', over: Parameters<typeof makeSpec>[0] = {}) =>
  makeSpec({ waves: defaultWaves([1, 5, 25, 100], 10 * MIN, { deadlineMs: HOUR }), ...over }, id);

/** Lets devices act, fires due timers, repeats until the phase is one of `until` (bounded). */
async function run(runner: EngineRunner, fleet: Fleet, id: string, until: DeploymentPhase[], stepMs = 5 * MIN, maxSteps = 200): Promise<DeploymentPhase> {
  for (let i = 0; i < maxSteps; i++) {
    await runner.idle();
    fleet.act(runner, sink, clock.now());
    await runner.idle();
    const phase = (await runner.get(id))!.core.phase;
    if (until.includes(phase)) return phase;
    clock.advance(stepMs);
  }
  return (await runner.get(id))!.core.phase;
}

describe.each(STORE_KINDS)('engine runner on %s', (kind) => {
  beforeEach(() => openStoreOf(kind));

  it('rolls a 20-device fleet to 100 % through every wave gate, recording each decision', async () => {
    const fleet = new Fleet(20);
    const runner = await newRunner(fleet);
    await runner.create(spec20(), 'alice');
    expect(await run(runner, fleet, 'dep-1', ['completed', 'rolled-back', 'aborted'])).toBe('completed');
    expect(fleet.devices.every((d) => d.version === '2.0.0')).toBe(true);
    const repo = repoOf();
    const decisions = await repo.decisions('dep-1');
    expect(decisions.map((d) => [d.wave, d.final.recommendation])).toEqual([[0, 'Proceed'], [1, 'Proceed'], [2, 'Proceed'], [3, 'Proceed']]);
    expect(decisions[3]!.analyzers.map((a) => a.name)).toEqual(['hard-gates']);
    expect((await repo.devices('dep-1')).filter((d) => d.state === 'committed')).toHaveLength(20);
    // Retained manifests stay after completion, so devices that join later still get the image.
    expect(sink.retained.size).toBe(1024);
  });

  it('a coordinator killed mid-wave and restarted on the same store finishes the rollout', async () => {
    const fleet = new Fleet(20);
    const first = await newRunner(fleet);
    await first.create(spec20(), 'alice');
    const phase = await run(first, fleet, 'dep-1', ['soaking'], MIN);
    expect(phase).toBe('soaking');
    const before = (await first.get('dep-1'))!.core;
    await first.stop();
    // A new process: new repository object on the same database file, same clock moving on.
    await store.close();
    store = await openAgain();
    sink.retained.clear(); // the broker lost its retained messages too: reconcile must republish
    const second = await newRunner(fleet);
    expect((await second.get('dep-1'))!.core).toEqual(before);
    expect(sink.retained.size).toBeGreaterThan(0);
    expect(await run(second, fleet, 'dep-1', ['completed', 'rolled-back'])).toBe('completed');
    expect(fleet.devices.every((d) => d.version === '2.0.0')).toBe(true);
  });

  it('a bad image aborts at the first trial failure and every exposed device comes back', async () => {
    const spec = spec20('dep-1', { waves: defaultWaves([25, 100], 10 * MIN, { deadlineMs: HOUR }) });
    const inWave0 = new Set(bucketsOfWave(spec, 0));
    const ids = Array.from({ length: 60 }, (_, i) => `dev-${i}`);
    // The last canary of wave 0 fails its trial boot; the canaries before it have committed by then.
    const bad = ids.filter((id) => inWave0.has(bucketOf(id))).at(-1)!;
    const fleet = new Fleet(60, (i) => (ids[i] === bad ? 'trial-fails' : 'good'));
    const runner = await newRunner(fleet);
    await runner.create(spec, 'alice');
    expect(await run(runner, fleet, 'dep-1', ['rolled-back'])).toBe('rolled-back');
    const core = (await runner.get('dep-1'))!.core;
    expect(core.rollback!.exposed).toBeGreaterThan(0);
    expect(core.rollback).toMatchObject({ unreachable: 0 });
    expect(core.rollback!.confirmed).toBe(core.rollback!.exposed);
    expect(core.waves[1]!.startedAt).toBeUndefined(); // the 100 % wave never started
    expect(fleet.devices.every((d) => d.version === '1.0.0')).toBe(true);
    expect(sink.retained.size).toBe(0);
    const decisions = (await repoOf().decisions('dep-1'));
    expect(decisions.at(-1)).toMatchObject({ source: 'early-hard-limit', final: { recommendation: 'Abort' } });
  });

  it('devices silent after installing time out at the deadline, the gate aborts, unreachable ones are marked', async () => {
    const fleet = new Fleet(40, (i) => (i % 4 === 0 ? 'silent' : 'good'));
    const runner = await newRunner(fleet);
    await runner.create(spec20('dep-1', { waves: defaultWaves([50, 100], 10 * MIN, { deadlineMs: HOUR }), rollback: { deadlineMs: 2 * HOUR } }), 'alice');
    expect(await run(runner, fleet, 'dep-1', ['rolling-back', 'rolled-back'])).toBe('rolling-back');
    const core = (await runner.get('dep-1'))!.core;
    expect(core.waves[0]!.counts.timedOut).toBeGreaterThanOrEqual(2);
    const gate = (await repoOf().decisions('dep-1')).at(-1)!;
    expect(gate).toMatchObject({ source: 'gate', final: { recommendation: 'Abort' } });
    expect(gate.final.rule).toMatch(/hard-limit:(install-failures|silent-after-install)/);
    // The silent devices never answer; after the rollback deadline they are unreachable.
    expect(await run(runner, fleet, 'dep-1', ['rolled-back'], 30 * MIN)).toBe('rolled-back');
    const rb = (await runner.get('dep-1'))!.core.rollback!;
    expect(rb.unreachable).toBe(core.waves[0]!.counts.timedOut);
    expect(rb.confirmed + rb.unreachable).toBe(rb.exposed);
    // One comes back later on the new image: it is sent the command again.
    const ghost = fleet.devices.find((d) => d.behaviour === 'silent' && d.took === 'dep-1')!;
    const sent = sink.commands.length;
    runner.onHello(hello(ghost.id, '2.0.0'));
    await runner.idle();
    expect(sink.commands.length).toBe(sent + 1);
    expect((await runner.get('dep-1'))!.core.phase).toBe('rolling-back');
  });

  it('operator actions: refused ones throw with a code, unknown ids and model conflicts are errors', async () => {
    const fleet = new Fleet(5);
    const runner = await newRunner(fleet);
    await runner.create(spec20(), 'alice');
    await expect(runner.act('dep-1', { type: 'resume' }, 'bob')).rejects.toMatchObject({ code: 'not-paused' });
    await expect(runner.act('dep-1', { type: 'resume' }, 'bob')).rejects.toBeInstanceOf(DeploymentActionError);
    await expect(runner.act('nope', { type: 'pause' }, 'bob')).rejects.toBeInstanceOf(DeploymentNotFoundError);
    await expect(runner.create(spec20('dep-2'), 'alice')).rejects.toBeInstanceOf(DeploymentConflictError);
    await expect(runner.create(spec20('dep-1', { target: { hardwareModels: ['m9'] } }), 'alice')).rejects.toBeInstanceOf(DeploymentConflictError);
    const paused = await runner.act('dep-1', { type: 'pause', reason: 'lunch' }, 'bob');
    expect(paused.pause).toMatchObject({ by: 'operator:bob', cause: 'operator' });
    expect(sink.audits.some((a) => a.action === 'deployment.paused' && a.actor === 'operator:bob')).toBe(true);
    const aborted = await runner.act('dep-1', { type: 'abort', rollback: false }, 'bob');
    expect(aborted.phase).toBe('aborted');
    // Now the model is free again.
    await expect(runner.create(spec20('dep-2'), 'alice')).resolves.toMatchObject({ phase: 'rolling' });
  });

  it('uses the injected analyzers; an advisory Monitor extends the soak and the record keeps every analyzer', async () => {
    const fleet = new Fleet(20);
    let calls = 0;
    const ai: GateAnalyzer = {
      name: 'ai',
      analyze: () => {
        calls++;
        return Promise.resolve({ ok: true, verdict: { recommendation: calls === 1 ? 'Abort' : 'Proceed', riskLevel: 'High', issues: ['odd logs'], rule: 'ai:risk', evidence: [] }, latencyMs: 1 });
      },
    };
    const runner = await newRunner(fleet, { analyzersFor: () => [hardGatesAnalyzer, ai] });
    await runner.create(spec20('dep-1', { waves: defaultWaves([50, 100], 10 * MIN, { deadlineMs: HOUR }) }), 'alice');
    expect(await run(runner, fleet, 'dep-1', ['completed', 'rolling-back', 'rolled-back'])).toBe('completed');
    const decisions = (await repoOf().decisions('dep-1'));
    // The AI's Abort was capped at Monitor (policy: aiMayAbort false): the soak was extended.
    expect(decisions[0]).toMatchObject({ wave: 0, final: { recommendation: 'Monitor' } });
    expect(decisions[0]!.analyzers.map((a) => [a.name, a.role, a.applied])).toEqual([
      ['hard-gates', 'hard', 'Proceed'],
      ['ai', 'advisory', 'Monitor'],
    ]);
    expect(decisions.slice(1).map((d) => d.final.recommendation)).toEqual(['Proceed', 'Proceed']);
  });

  it('with the default analyzers (hard gates + statistical judge) a healthy release completes: the last wave has no control, the judge abstains, the hard gates decide', async () => {
    const fleet = new Fleet(100);
    const defaults: FlagEvaluator = { evaluate: (name, key) => evaluateFlag(DEFAULT_FLAGS.find((f) => f.name === name)!, key) };
    const analyzersFor = createAnalyzersFor({ flags: defaults });
    // Telemetry as the shell's snapshot provider gives it: identical healthy devices; the control is
    // every fleet device outside the waves started so far (none left at the last wave).
    const healthy = (d: DeviceSummary, i: number): DeviceSummary => {
      const cpu = 20 + ((i * 37) % 17) / 4;
      return { ...d, exposureH: 10, samples: 100, events: { crashes: 0, errors: 1, reboots: 0, agentRestarts: 0 }, metrics: { cpuPct: { n: 100, mean: cpu, p99: cpu * 1.5 } } };
    };
    const snapshotFor = (state: DeploymentState, wave: number, now: number): CanarySnapshot => {
      const base = snapshotFromProgress(state, wave, now);
      const inWaves = new Set(base.devices.map((d) => d.deviceId));
      const control = fleet.devices
        .filter((d) => !inWaves.has(d.id))
        .map((d): DeviceSummary => ({ deviceId: d.id, cohort: 'control', hardwareModel: 'm1', firmwareVersion: '1.0.0', exposureH: 0, samples: 0, events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 }, metrics: {}, silent: false, errorSignatures: [], logSample: [] }));
      return { ...base, devices: [...base.devices, ...control].map(healthy) };
    };
    const runner = await newRunner(fleet, { analyzersFor, snapshotFor });
    await runner.create(spec20('dep-1', { waves: defaultWaves([50, 100], 10 * MIN, { deadlineMs: HOUR }) }), 'alice');
    expect(await run(runner, fleet, 'dep-1', ['completed', 'rolling-back', 'rolled-back', 'aborted'])).toBe('completed');
    const decisions = (await repoOf().decisions('dep-1'));
    expect(decisions.map((d) => [d.wave, d.final.recommendation])).toEqual([[0, 'Proceed'], [1, 'Proceed']]);
    // Wave 0 had a control: the judge gave a verdict.
    expect(decisions[0]!.analyzers.find((a) => a.name === 'stat')).toMatchObject({ ok: true, applied: 'Proceed' });
    // The last wave had none: the judge's abstention is on the record, and the hard gates decided.
    expect(decisions[1]!.analyzers.map((a) => [a.name, a.ok])).toEqual([['hard-gates', true], ['stat', false]]);
    expect(decisions[1]!.analyzers[1]!.error).toMatchObject({ code: 'no-control' });
    expect(decisions[1]!.final.rule).toContain('hard-gates=Proceed');
    expect(fleet.devices.every((d) => d.version === '2.0.0')).toBe(true);
  });

  it('an effect that fails (broker down) is retried by reconciling after a delay', async () => {
    const fleet = new Fleet(5);
    sink.failPublishes = 1;
    const runner = await newRunner(fleet);
    const spec = spec20();
    await runner.create(spec, 'alice');
    await runner.idle();
    const wave0 = bucketsOfWave(spec, 0);
    expect(wave0.some((b) => sink.retained.has(`m1/${b}`))).toBe(false);
    expect(runner.counters.effectFailures).toBe(1);
    clock.advance(EFFECT_RETRY_MS);
    await runner.idle();
    expect(wave0.every((b) => sink.retained.has(`m1/${b}`))).toBe(true);
  });

  it('a timer that fires before its time (a cached event-loop time, a wall clock that moved) is armed again, so a soak still ends', async () => {
    // Every timer of this clock fires 2 minutes early; time moves a minute at a time, so the tick meant
    // for the end of a soak sees it not yet over.
    const early: Clock = {
      now: () => clock.now(),
      setTimeout: (fn, ms) => clock.setTimeout(fn, Math.max(0, ms - 2 * MIN)),
      clearTimeout: (h) => clock.clearTimeout(h),
      sleep: (ms) => clock.sleep(ms),
    };
    const fleet = new Fleet(20);
    const runner = await newRunner(fleet, { clock: early });
    await runner.create(spec20(), 'alice');
    expect(await run(runner, fleet, 'dep-1', ['completed', 'rolled-back', 'aborted'], MIN)).toBe('completed');
  });

  it('a wake-up further off than the longest timer is reached in steps', async () => {
    const fleet = new Fleet(5);
    const runner = await newRunner(fleet);
    await runner.create(spec20('dep-1', { startAt: T0 + 3 * 24 * HOUR }), 'alice');
    await runner.idle();
    expect((await runner.get('dep-1'))!.core.phase).toBe('scheduled');
    for (let day = 0; day < 3; day++) {
      clock.advance(24 * HOUR);
      await runner.idle();
    }
    expect((await runner.get('dep-1'))!.core.phase).toBe('rolling');
  });

  it('stop is safe twice and clears its timers', async () => {
    const runner = await newRunner(new Fleet(3));
    await runner.create(spec20(), 'alice');
    await runner.stop();
    const at = (await repoOf().load('dep-1'))!.core;
    await runner.stop();
    clock.advance(10 * HOUR);
    await runner.idle();
    expect((await repoOf().load('dep-1'))!.core.revision).toBe(at.revision);
  });
  it('statuses that arrive together are stepped in order and saved in one transaction; a queued action keeps its place', async () => {
    const fleet = new Fleet(20);
    const repo = repoOf();
    let saves = 0;
    const save = repo.save.bind(repo);
    repo.save = async (change) => {
      saves++;
      await save(change);
    };
    const runner = await newRunner(fleet, { repo });
    await runner.create(spec20('dep-1', { waves: defaultWaves([100], 10 * MIN, { deadlineMs: HOUR }) }), 'alice');
    await runner.idle();
    saves = 0;
    fleet.act(runner, sink, clock.now(), fleet.devices.slice(0, 10)); // 6 statuses each, fed while the queue is free: one batch
    const paused = runner.act('dep-1', { type: 'pause', reason: 'look' }, 'bob');
    fleet.act(runner, sink, clock.now(), fleet.devices.slice(10)); // after the action: a batch of its own
    const atPause = await paused;
    await runner.idle();
    // The action saw the first ten devices' statuses and none of the others'.
    expect(atPause.waves[0]!.counts.committed).toBe(10);
    const core = (await runner.get('dep-1'))!.core;
    expect(core.waves[0]!.counts.committed).toBe(20);
    // 120 statuses, persisted in three saves: the first batch, the pause, the second batch.
    expect(saves).toBe(3);
    expect((await repo.devices('dep-1')).filter((d) => d.state === 'committed')).toHaveLength(20);
    expect((await repo.load('dep-1'))!.core).toEqual(core);
  });
});
