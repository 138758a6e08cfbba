/**
 * Long rollouts stay fresh: the engine has an active deployment's manifest signed afresh half-way
 * through its lifetime and re-published on every topic its waves reached, never for a finished one;
 * the runner answers the request at once and keeps renewing across days of a manual clock.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../support/manual-clock.js';
import { ManifestSchema, type Envelope } from '../../protocol/signed.js';
import type { RolloutMessage } from '../../protocol/messages.js';
import { buildManifest, DEFAULT_MANIFEST_TTL_MS, signManifest } from '../../firmware/manifest.js';
import { generateSigningKey } from '../../firmware/keys.js';
import { nextWakeAt, step } from '../../coordinator/engine/engine.js';
import { currentManifest, manifestRenewAt, RENEWAL_RETRY_MS } from '../../coordinator/engine/manifest-renewal.js';
import { bucketsOfWave } from '../../coordinator/engine/wave-plan.js';
import { EngineRunner } from '../../coordinator/engine/engine-runner.js';
import { SqlDeploymentRepository } from '../../coordinator/deployments/deployment-repo.js';
import { openTestStore, STORE_KINDS } from '../support/postgres.js';
import type { AuditEntry, DeploymentCore, DeploymentSpec, EffectSink, EngineEffect } from '../../coordinator/engine/types.js';
import { devicesInWave, HOUR, makeSpec, members, MIN, T0 } from './engine-fixtures.js';
import { decision, Drive, PHASE_BUILDERS, soaking } from './engine-phases.js';

const DAY = 24 * HOUR;
const HALF_LIFE = DEFAULT_MANIFEST_TTL_MS / 2;
const key = generateSigningKey();

/** What the coordinator's FirmwareService does: the same manifest, the next metadataVersion, a new lifetime. */
function renewed(core: DeploymentCore, now: number, over: { metadataVersion?: number; deploymentId?: string } = {}): Envelope {
  const m = ManifestSchema.parse(currentManifest(core).signed);
  const next = buildManifest({
    firmwareVersion: m.firmwareVersion,
    hardware: m.hardware,
    artifact: m.artifact,
    installableOver: m.installableOver,
    deploymentId: over.deploymentId ?? m.deploymentId!,
    securityVersion: m.securityVersion,
    issuedAt: now,
    metadataVersion: over.metadataVersion ?? m.metadataVersion! + 1,
  });
  return signManifest(next, [key]);
}

const ofType = <T extends EngineEffect['type']>(effects: readonly EngineEffect[], type: T) =>
  effects.filter((e): e is Extract<EngineEffect, { type: T }> => e.type === type);
const metadataVersion = (e: Envelope): number => e.signed['metadataVersion'] as number;

/** Wave 0 passed and wave 1 waits for an approval nobody gives: the rollout runs for days. */
function waitingForApproval(): Drive {
  const spec = makeSpec({
    waves: [
      { percent: 10, soakMs: 30 * MIN, deadlineMs: HOUR, minDevicesReporting: 1 },
      { percent: 100, soakMs: 30 * MIN, deadlineMs: HOUR, minDevicesReporting: 1, requiresApproval: true },
    ],
  });
  const d = Drive.create(spec);
  const w0 = devicesInWave(spec, 0, 3);
  d.at(T0 + 1).ev({ type: 'wave-members', wave: 0, members: members(w0) });
  d.at(T0 + 2 * MIN).statuses(w0, 'committed');
  d.at(T0 + 40 * MIN).ev({ type: 'tick' });
  d.ev({ type: 'gate-result', wave: 0, attempt: 1, decision: decision(spec, 0, 1, 'Proceed') });
  expect(d.state.core).toMatchObject({ phase: 'pending', current: 1, waitingFor: ['approval'] });
  return d;
}

describe('manifest renewal in the engine (manual clock)', () => {
  it('renews half-way through the lifetime and re-publishes on every published wave topic, last', () => {
    const d = waitingForApproval();
    const first = d.spec.manifest;
    expect(nextWakeAt(d.state, d.now)).toBe(T0 + HALF_LIFE);
    // Before it is due a tick asks for nothing.
    expect(ofType(d.at(T0 + HALF_LIFE - 1).ev({ type: 'tick' }).effects, 'renew-manifest')).toEqual([]);
    const due = d.at(T0 + HALF_LIFE).ev({ type: 'tick' });
    expect(due.effects.filter((e) => e.type !== 'schedule-wake').at(-1)).toEqual({ type: 'renew-manifest' });
    const fresh = renewed(d.state.core, d.now);
    const r = d.ev({ type: 'manifest-renewed', manifest: fresh });
    expect(currentManifest(r.state.core)).toBe(fresh);
    // Wave 0's buckets get the renewed manifest, under the same deployment and wave; wave 1 never started.
    expect(ofType(r.effects, 'publish-rollout')).toEqual([
      { type: 'publish-rollout', hardwareModel: 'm1', buckets: bucketsOfWave(d.spec, 0), message: { v: 1, kind: 'rollout', deploymentId: 'dep-1', wave: 0, manifest: fresh } },
    ]);
    expect(ofType(r.effects, 'audit').map((a) => a.entry.action)).toEqual(['deployment.manifest-renewed']);
    expect(metadataVersion(fresh)).toBeGreaterThan(metadataVersion(first));
    // The next renewal is due half-way through the new lifetime; the approval then publishes the new manifest.
    expect(nextWakeAt(r.state, d.now)).toBe(T0 + 2 * HALF_LIFE);
    const approved = d.at(T0 + 5 * DAY).op({ type: 'approve' });
    expect(ofType(approved.effects, 'publish-rollout').map((p) => p.message.manifest)).toEqual([fresh]);
  });

  it('renews a draft and a deployment waiting for its start, where nothing is published yet', () => {
    for (const d of [PHASE_BUILDERS.draft!(), Drive.create(makeSpec({ startAt: T0 + 5 * DAY }))]) {
      d.at(T0 + HALF_LIFE).ev({ type: 'tick' });
      expect(ofType(d.last.effects, 'renew-manifest')).toHaveLength(1);
      const r = d.ev({ type: 'manifest-renewed', manifest: renewed(d.state.core, d.now) });
      expect(ofType(r.effects, 'publish-rollout')).toEqual([]);
      expect(manifestRenewAt(r.state.core)).toBe(T0 + 2 * HALF_LIFE);
    }
  });

  it.each([
    ['draft', true],
    ['scheduled', true],
    ['pending-approval', true],
    ['rolling', true],
    ['rolling-paused', true],
    ['soaking', true],
    ['held', true],
    ['gating', true],
    ['completed', false],
    ['aborted', false],
    ['rolling-back', false],
    ['rolled-back', false],
  ])('%s: renews its manifest → %s', (phase, renews) => {
    const d = PHASE_BUILDERS[phase]!();
    expect(manifestRenewAt(d.state.core) !== undefined).toBe(renews);
    // Long past the expiry: a finished deployment is never asked to renew.
    const r = step(d.state, { type: 'tick' }, T0 + 8 * DAY);
    expect(ofType(r.effects, 'renew-manifest')).toHaveLength(renews ? 1 : 0);
  });

  it('drops a renewed manifest that arrives after the deployment finished: nothing is published', () => {
    const d = soaking();
    const fresh = renewed(d.state.core, T0 + HALF_LIFE);
    d.at(T0 + HALF_LIFE).op({ type: 'abort', reason: 'test', rollback: true });
    const r = d.ev({ type: 'manifest-renewed', manifest: fresh });
    expect(ofType(r.effects, 'publish-rollout')).toEqual([]);
    expect(ofType(r.effects, 'audit').map((a) => a.entry.action)).toEqual(['deployment.manifest-renewal-dropped']);
    expect(currentManifest(r.state.core)).toBe(d.spec.manifest);
  });

  it('never renews a manifest signed offline', () => {
    const spec: DeploymentSpec = { ...makeSpec(), manifestOrigin: 'offline' };
    const d = Drive.create(spec);
    expect(manifestRenewAt(d.state.core)).toBeUndefined();
    expect(ofType(step(d.state, { type: 'tick' }, T0 + 8 * DAY).effects, 'renew-manifest')).toEqual([]);
  });

  it('retries a failed renewal later, and refuses one that is not the same update, fresher', () => {
    const d = waitingForApproval();
    d.at(T0 + HALF_LIFE).ev({ type: 'tick' });
    const failed = d.ev({ type: 'manifest-renewal-failed', error: 'disk full' });
    expect(failed.state.core.manifestRenewal).toEqual({ failures: 1, retryAt: d.now + RENEWAL_RETRY_MS, error: 'disk full' });
    expect(nextWakeAt(d.state, d.now)).toBe(d.now + RENEWAL_RETRY_MS);
    // Not due again before the retry time, even on other events.
    expect(ofType(d.at(d.now + RENEWAL_RETRY_MS - 1).ev({ type: 'tick' }).effects, 'renew-manifest')).toEqual([]);
    d.at(T0 + HALF_LIFE + RENEWAL_RETRY_MS).ev({ type: 'tick' });
    expect(ofType(d.last.effects, 'renew-manifest')).toHaveLength(1);
    const stale = renewed(d.state.core, d.now, { metadataVersion: metadataVersion(d.spec.manifest) });
    const refused = d.ev({ type: 'manifest-renewed', manifest: stale });
    expect(refused.state.core.manifestRenewal?.failures).toBe(2);
    expect(refused.state.core.manifestRenewal?.error).toMatch(/metadataVersion .* is not above/);
    expect(ofType(refused.effects, 'publish-rollout')).toEqual([]);
    const other = renewed(d.state.core, d.now, { deploymentId: 'dep-2' });
    const wrong = d.at(d.now + RENEWAL_RETRY_MS).ev({ type: 'manifest-renewed', manifest: other }).state.core.manifestRenewal;
    expect(wrong?.failures).toBe(3);
    expect(wrong?.error).toMatch(/bound to dep-2/);
    const good = d.ev({ type: 'manifest-renewed', manifest: renewed(d.state.core, d.now) });
    expect(good.state.core.manifestRenewal).toBeUndefined();
  });
});

/** Retained topics, in memory. */
class MemorySink implements EffectSink {
  readonly retained = new Map<string, RolloutMessage>();
  readonly audits: AuditEntry[] = [];
  publishRollout(model: string, buckets: readonly number[], message: RolloutMessage): Promise<void> {
    for (const b of buckets) this.retained.set(`${model}/${b}`, message);
    return Promise.resolve();
  }
  clearRollout(model: string, buckets: readonly number[]): Promise<void> {
    for (const b of buckets) this.retained.delete(`${model}/${b}`);
    return Promise.resolve();
  }
  sendCommand(): Promise<void> {
    return Promise.resolve();
  }
  audit(entry: AuditEntry): void {
    this.audits.push(entry);
  }
}

describe.each(STORE_KINDS)('manifest renewal in the runner on %s (manual clock)', (kind) => {
  it('keeps every published topic within its manifest lifetime for days, and stops once the deployment is aborted', async () => {
    const clock = new ManualClock(T0);
    const sink = new MemorySink();
    const repo = new SqlDeploymentRepository(await openTestStore(kind));
    const signed: number[] = [];
    const ids = devicesInWave(makeSpec(), 0, 2);
    const runner = new EngineRunner({
      repo,
      sink,
      clock,
      directory: { members: () => members(ids) },
      renewManifest: (core) => {
        const env = renewed(core, clock.now());
        signed.push(clock.now());
        return env;
      },
    });
    await runner.start();
    // One 10 % wave whose members never report: it stays rolling (deadline in 30 days).
    const spec = makeSpec({ waves: [{ percent: 10, soakMs: 30 * MIN, deadlineMs: 30 * DAY, minDevicesReporting: 1 }, { percent: 100, minDevicesReporting: 1 }] });
    await runner.create(spec, 'alice');
    await runner.idle();
    const expiries = (): number[] => [...new Set([...sink.retained.values()].map((m) => Date.parse(m.manifest.signed['expiresAt'] as string)))];
    for (let hour = 1; hour <= 10 * 24; hour++) {
      clock.advance(HOUR);
      await runner.idle();
      // Every topic carries one manifest, never one that has expired.
      const [expires, ...more] = expiries();
      expect(more).toEqual([]);
      expect(expires!).toBeGreaterThan(clock.now());
    }
    expect(signed).toEqual([T0 + HALF_LIFE, T0 + 2 * HALF_LIFE]);
    expect((await runner.get('dep-1'))!.core.phase).toBe('rolling');
    await runner.act('dep-1', { type: 'abort', reason: 'done', rollback: false }, 'alice');
    clock.advance(20 * DAY);
    await runner.idle();
    expect(signed).toHaveLength(2);
    expect(sink.audits.filter((a) => a.action === 'deployment.manifest-renewed')).toHaveLength(2);
    await runner.stop();
  });

  it('records a failure and retries when the runner has no signer', async () => {
    const clock = new ManualClock(T0);
    const sink = new MemorySink();
    const runner = new EngineRunner({ repo: new SqlDeploymentRepository(await openTestStore(kind)), sink, clock, directory: { members: () => [] } });
    await runner.start();
    await runner.create(makeSpec({ draft: true }), 'alice');
    for (const by of [HALF_LIFE, RENEWAL_RETRY_MS, RENEWAL_RETRY_MS]) {
      clock.advance(by);
      await runner.idle();
    }
    expect(sink.audits.filter((a) => a.action === 'deployment.manifest-renewal-failed').map((a) => a.detail['failures'])).toEqual([1, 2, 3]);
    await runner.stop();
  });
});

