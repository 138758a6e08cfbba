/**
 * Wave and deployment transitions of the pure engine: starting a wave (publishing its manifest),
 * completing it (deadline: silent devices time out), soaking, gating, acting on a gate decision,
 * aborting and rolling back. Pure: every outward action is an effect pushed on the context.
 */
import type { Recommendation } from '@fleet/protocol/canary';
import type { GatePolicy } from '../gate/analyzer.js';
import type { DecisionRecord } from '../gate/decision.js';
import {
  checkInstallFailures,
  checkTrialFailures,
  type HardGateCounts,
} from '../gate/hard-gates.js';
import { inputsDigest } from '../gate/run-gate.js';
import { categoryOf, needsRollback } from './device-progress.js';
import { audit, currentManifest, currentWave, engineDecisionId, rollbackCommandId, waveSpec, type Ctx } from './engine-context.js';
import { isInsideWindow } from './maintenance-window.js';
import { bucketsOfWave, startedBuckets } from './wave-plan.js';
import type { RolloutMessage } from '@fleet/protocol/messages';
import type { DeploymentCore, DeploymentSpec, DeviceProgress } from './types.js';

/** The policy the gate applies to a wave: the deployment's, with the wave's own minimum of reporters. */
export function gatePolicyFor(spec: DeploymentSpec, wave: number): GatePolicy {
  const w = spec.waves[wave];
  return w ? { ...spec.gatePolicy, minReportingDevices: w.minDevicesReporting } : { ...spec.gatePolicy };
}

/** Recomputes what a pending wave waits for. */
export function computeWaitingFor(core: DeploymentCore, now: number): DeploymentCore['waitingFor'] {
  const out: DeploymentCore['waitingFor'] = [];
  if (core.phase === 'draft') return ['operator'];
  if (core.phase === 'scheduled') return ['start-time'];
  if (core.phase !== 'pending') return out;
  const w = core.spec.waves[core.current]!;
  if (w.requiresApproval && !core.approvals.includes(core.current)) out.push('approval');
  if (!isInsideWindow(core.spec.maintenanceWindows, now)) out.push('window');
  return out;
}

function rolloutMessage(core: DeploymentCore, wave: number): RolloutMessage {
  return { v: 1, kind: 'rollout', deploymentId: core.spec.id, wave, manifest: currentManifest(core) };
}

/** Publishes a wave's (current) manifest on its buckets for every targeted model. */
export function publishWave(ctx: Ctx, index: number): void {
  const core = ctx.d.core;
  const buckets = bucketsOfWave(core.spec, index);
  if (buckets.length === 0) return;
  for (const model of core.spec.target.hardwareModels) {
    ctx.effects.push({ type: 'publish-rollout', hardwareModel: model, buckets, message: rolloutMessage(core, index) });
  }
}

/** Clears every published wave topic (abort, rollback). */
export function clearPublished(ctx: Ctx): void {
  const buckets = startedBuckets(ctx.d.core);
  if (buckets.length === 0) return;
  for (const model of ctx.d.core.spec.target.hardwareModels) ctx.effects.push({ type: 'clear-rollout', hardwareModel: model, buckets });
}

/** Enters `pending` for wave `index` and starts it if nothing holds it. */
export function enterPending(ctx: Ctx, index: number, actor: string): void {
  const core = ctx.d.core;
  core.phase = 'pending';
  core.current = index;
  tryStartPending(ctx, actor);
}

/** Starts the pending wave when approval, window and pause allow; else records what it waits for. */
export function tryStartPending(ctx: Ctx, actor: string, overrideWindow = false): void {
  const core = ctx.d.core;
  if (core.phase !== 'pending') return;
  const waiting = computeWaitingFor(core, ctx.now).filter((w) => !(overrideWindow && w === 'window'));
  core.waitingFor = waiting;
  if (waiting.length > 0 || core.pause) return;
  startWave(ctx, core.current, actor);
}

export function startWave(ctx: Ctx, index: number, actor: string): void {
  const core = ctx.d.core;
  const w = core.waves[index]!;
  const spec = waveSpec(ctx, index);
  core.phase = 'rolling';
  core.current = index;
  core.waitingFor = [];
  w.status = 'rolling';
  w.startedAt = ctx.now;
  w.deadlineAt = ctx.now + spec.deadlineMs;
  const buckets = bucketsOfWave(core.spec, index);
  publishWave(ctx, index);
  ctx.effects.push({ type: 'request-members', wave: index, buckets });
  audit(ctx, actor, 'deployment.wave-started', { percent: spec.percent, buckets: buckets.length, deadlineAt: w.deadlineAt }, { wave: index });
}

/** Completes the rolling wave when every expected device has finished (membership known). */
export function checkWaveComplete(ctx: Ctx): void {
  const core = ctx.d.core;
  if (core.phase !== 'rolling' || core.pause) return;
  const w = currentWave(ctx);
  if (!w.membersKnown) return;
  const c = w.counts;
  if (c.waiting > 0 || c.inProgress > 0) return;
  // Offline members count toward the minimum: a wave whose devices are all offline waits for its
  // deadline instead of passing at once with no evidence.
  const needed = Math.min(waveSpec(ctx, w.index).minDevicesReporting, c.tracked - c.ineligible);
  if (c.reporting < needed) return;
  completeWave(ctx, 'finished', 'engine');
}

/** Ends the rolling phase: on the deadline, unfinished devices time out (they count as failed). */
export function completeWave(ctx: Ctx, how: 'finished' | 'deadline' | 'promoted', actor: string): void {
  const core = ctx.d.core;
  const w = currentWave(ctx);
  let timedOut = 0;
  if (how === 'deadline') {
    for (const dev of [...ctx.d.devices(w.index)]) {
      const cat = categoryOf(dev);
      if (cat === 'waiting' || cat === 'inProgress') {
        ctx.d.put({ ...dev, timedOut: true });
        timedOut++;
      }
    }
  }
  w.completedAt = ctx.now;
  if (w.counts.tracked === 0) {
    passEmptyWave(ctx, how, actor);
    return;
  }
  w.status = 'soaking';
  core.phase = 'soaking';
  const exposed = w.counts.tracked - w.counts.offline - w.counts.ineligible;
  // An empty wave exposed nobody: nothing to soak. A promoted wave skips the soak by definition.
  const soak = exposed === 0 || how === 'promoted' ? 0 : waveSpec(ctx, w.index).soakMs;
  w.soakEndsAt = ctx.now + soak;
  audit(ctx, actor, 'deployment.wave-completed', { how, timedOut, counts: w.counts, soakEndsAt: w.soakEndsAt }, { wave: w.index });
  if (soak === 0) beginGate(ctx);
}

/**
 * A wave with no members at all (e.g. 1 % of a 100-device fleet) has nothing to soak or judge: the
 * statistical judge would say Monitor on no evidence until the Monitor limit held the rollout. It
 * passes at once with an engine decision (rule `empty-wave`) so the decision log says why. Devices that
 * turn up later in its buckets are tracked in it as usual.
 */
function passEmptyWave(ctx: Ctx, how: 'finished' | 'deadline' | 'promoted', actor: string): void {
  const core = ctx.d.core;
  const w = currentWave(ctx);
  const percent = waveSpec(ctx, w.index).percent;
  audit(ctx, actor, 'deployment.wave-completed', { how, timedOut: 0, counts: w.counts, empty: true }, { wave: w.index });
  const issue = `wave ${w.index + 1} (${percent}%) has no devices: nothing to soak or judge, so it passes without a gate`;
  const decision: DecisionRecord = {
    id: engineDecisionId(ctx, w.index, 'empty-wave'),
    deploymentId: core.spec.id,
    wave: w.index,
    attempt: w.gateAttempt,
    at: ctx.now,
    source: 'empty-wave',
    inputsDigest: inputsDigest(w.counts),
    policy: { ...gatePolicyFor(core.spec, w.index) },
    analyzers: [],
    final: { recommendation: 'Proceed', riskLevel: 'Low', rule: 'empty-wave', issues: [issue] },
  };
  ctx.effects.push({ type: 'record-decision', decision });
  applyDecision(ctx, decision);
}

export function beginGate(ctx: Ctx): void {
  const core = ctx.d.core;
  if (core.pause) return;
  const w = currentWave(ctx);
  w.status = 'gating';
  w.gateAttempt += 1;
  core.phase = 'gating';
  ctx.effects.push({ type: 'run-gate', wave: w.index, attempt: w.gateAttempt });
}

/** Acts on a gate decision for the current wave (stale attempts are the caller's to filter). */
export function applyDecision(ctx: Ctx, decision: DecisionRecord): void {
  const core = ctx.d.core;
  const w = currentWave(ctx);
  const rec: Recommendation = decision.final.recommendation;
  w.verdict = rec;
  w.decisionId = decision.id;
  audit(ctx, 'gate', 'deployment.gate-decided', { verdict: rec, rule: decision.final.rule, attempt: decision.attempt }, { wave: w.index });
  switch (rec) {
    case 'Proceed':
      w.status = 'passed';
      if (w.index === core.waves.length - 1) {
        core.phase = 'completed';
        core.waitingFor = [];
        audit(ctx, 'engine', 'deployment.completed', { waves: core.waves.length });
      } else {
        enterPending(ctx, w.index + 1, 'engine');
      }
      return;
    case 'Monitor': {
      w.monitorCount += 1;
      const m = core.spec.monitor;
      if (w.monitorCount > m.maxExtensions) {
        if (m.onLimit === 'abort') {
          const reason = `the gate said Monitor more than ${m.maxExtensions} times`;
          // The abort is a decision of its own (the Monitor that triggered it is already recorded), so
          // the decision log shows what stopped the rollout.
          const abort: DecisionRecord = {
            id: engineDecisionId(ctx, w.index, 'monitor-limit'),
            deploymentId: core.spec.id,
            wave: w.index,
            attempt: decision.attempt,
            at: ctx.now,
            source: 'monitor-limit',
            inputsDigest: decision.inputsDigest,
            policy: { ...decision.policy, monitorMaxExtensions: m.maxExtensions, monitorOnLimit: m.onLimit },
            analyzers: [],
            final: {
              recommendation: 'Abort',
              riskLevel: 'High',
              rule: 'monitor-limit',
              issues: [`${reason} (limit ${m.maxExtensions}, on limit: abort); last gate: ${decision.final.rule}`, ...decision.final.issues],
            },
          };
          ctx.effects.push({ type: 'record-decision', decision: abort });
          w.verdict = 'Abort';
          w.decisionId = abort.id;
          abortDeployment(ctx, 'gate', reason, core.spec.rollback.auto);
        } else {
          w.status = 'soaking';
          core.phase = 'soaking';
          w.soakEndsAt = ctx.now;
          core.pause = { at: ctx.now, by: 'gate', cause: 'monitor-limit', reason: `Monitor limit (${m.maxExtensions}) reached: promote to proceed, or abort` };
          audit(ctx, 'gate', 'deployment.held', { monitorCount: w.monitorCount }, { wave: w.index });
        }
        return;
      }
      const ext = m.extensionMs ?? Math.max(60_000, waveSpec(ctx, w.index).soakMs);
      w.status = 'soaking';
      core.phase = 'soaking';
      // While paused the extension counts from the pause: resume shifts it by the paused time.
      w.soakEndsAt = (core.pause?.at ?? ctx.now) + ext;
      audit(ctx, 'gate', 'deployment.soak-extended', { monitorCount: w.monitorCount, soakEndsAt: w.soakEndsAt }, { wave: w.index });
      return;
    }
    case 'Abort':
      abortDeployment(ctx, 'gate', decision.final.rule, core.spec.rollback.auto);
      return;
  }
}

/**
 * Stops the deployment: clears its retained topics, marks waves, and (when asked and anything was
 * exposed) starts the rollback. Otherwise ends in `aborted`.
 */
export function abortDeployment(ctx: Ctx, actor: string, reason: string, rollback: boolean): void {
  const core = ctx.d.core;
  for (const w of core.waves) {
    if (w.status === 'pending') w.status = 'skipped';
    else if (w.status === 'rolling' || w.status === 'soaking' || w.status === 'gating') w.status = 'aborted';
  }
  delete core.pause;
  core.waitingFor = [];
  core.abortReason = reason;
  core.abortedBy = actor;
  clearPublished(ctx);
  audit(ctx, actor, 'deployment.aborted', { reason, rollback });
  // Nothing was ever published: nothing to roll back.
  const anyStarted = core.waves.some((w) => w.startedAt !== undefined);
  if (rollback && anyStarted) startRollback(ctx, actor, reason, false);
  else core.phase = 'aborted';
}

/** Sends a rollback command to every exposed device and tracks them; ends at once if none. */
export function startRollback(ctx: Ctx, actor: string, reason: string, clearTopics: boolean): void {
  const core = ctx.d.core;
  // A rolled-back image must not be offered again: its retained manifests go first.
  if (clearTopics) clearPublished(ctx);
  for (const w of core.waves) if (w.status === 'pending') w.status = 'skipped';
  core.rollback = {
    startedAt: ctx.now,
    deadlineAt: ctx.now + core.spec.rollback.deadlineMs,
    by: actor,
    reason,
    exposed: 0,
    confirmed: 0,
    unreachable: 0,
    refused: 0,
  };
  core.phase = 'rolling-back';
  delete core.pause;
  core.waitingFor = [];
  for (const dev of [...ctx.d.devices()]) if (needsRollback(dev)) sendRollback(ctx, dev, actor);
  audit(ctx, actor, 'deployment.rollback-started', { reason, exposed: core.rollback.exposed, deadlineAt: core.rollback.deadlineAt });
  checkRollbackDone(ctx);
}

/** (Re)sends the rollback command to one device; counts it as exposed on the first send. */
export function sendRollback(ctx: Ctx, dev: DeviceProgress, actor: string): DeviceProgress {
  const core = ctx.d.core;
  const attempts = (dev.rollback?.attempts ?? 0) + 1;
  const commandId = rollbackCommandId(core.spec.id, dev.deviceId, attempts);
  const first = dev.rollback === undefined;
  if (core.phase === 'rolled-back' && core.rollback) {
    // A device still on the new image turned up after the rollback finished: the rollback reopens.
    core.phase = 'rolling-back';
    delete core.rollback.completedAt;
    core.rollback.deadlineAt = Math.max(core.rollback.deadlineAt, ctx.now + core.spec.rollback.deadlineMs);
  }
  const next: DeviceProgress = { ...dev, rollback: { status: 'sent', attempts, commandId, sentAt: ctx.now } };
  if (core.rollback) {
    if (first) core.rollback.exposed += 1;
    else if (dev.rollback?.status === 'unreachable') core.rollback.unreachable -= 1;
    else if (dev.rollback?.status === 'refused') core.rollback.refused -= 1;
  }
  ctx.d.put(next);
  ctx.effects.push({ type: 'send-command', command: { commandId, deviceId: dev.deviceId, action: 'rollback', deploymentId: core.spec.id } });
  if (!first) audit(ctx, actor, 'device.rollback-resent', { attempts }, { deviceId: dev.deviceId, wave: dev.wave });
  return next;
}

/** Marks a device's rollback confirmed (it reports its old version, or never left it). */
export function confirmRollback(ctx: Ctx, dev: DeviceProgress): DeviceProgress {
  const core = ctx.d.core;
  if (!dev.rollback || dev.rollback.status === 'confirmed') return dev;
  if (core.rollback) {
    core.rollback.confirmed += 1;
    if (dev.rollback.status === 'unreachable') core.rollback.unreachable -= 1;
    if (dev.rollback.status === 'refused') core.rollback.refused -= 1;
  }
  const next: DeviceProgress = { ...dev, rollback: { ...dev.rollback, status: 'confirmed', confirmedAt: ctx.now } };
  ctx.d.put(next);
  return next;
}

/**
 * A device refused its rollback: it committed an image that raised its security floor, and no path
 * boots below the floor. It stays on the new image; the rollback stops waiting for it.
 */
export function refuseRollback(ctx: Ctx, dev: DeviceProgress): DeviceProgress {
  const core = ctx.d.core;
  if (!dev.rollback || dev.rollback.status === 'confirmed' || dev.rollback.status === 'refused') return dev;
  if (core.rollback) {
    core.rollback.refused += 1;
    if (dev.rollback.status === 'unreachable') core.rollback.unreachable -= 1;
  }
  const next: DeviceProgress = { ...dev, rollback: { ...dev.rollback, status: 'refused' } };
  ctx.d.put(next);
  audit(ctx, 'engine', 'device.rollback-refused', { reason: 'below-security-floor', detail: dev.detail ?? null }, { deviceId: dev.deviceId, wave: dev.wave });
  return next;
}

/** The device says it refused a rollback below its security floor (its status or its hello). */
export function isRollbackRefusal(state: DeviceProgress['state'] | undefined, reason: DeviceProgress['reason']): boolean {
  return state === 'committed' && reason === 'below-security-floor';
}

export function checkRollbackDone(ctx: Ctx): void {
  const core = ctx.d.core;
  const rb = core.rollback;
  if (core.phase !== 'rolling-back' || !rb) return;
  if (rb.confirmed + rb.unreachable + rb.refused < rb.exposed) return;
  rb.completedAt = ctx.now;
  core.phase = 'rolled-back';
  audit(ctx, 'engine', 'deployment.rolled-back', { exposed: rb.exposed, confirmed: rb.confirmed, unreachable: rb.unreachable, refused: rb.refused });
}

/** The rollback deadline passed: devices that never confirmed are unreachable. */
export function expireRollback(ctx: Ctx): void {
  const core = ctx.d.core;
  const rb = core.rollback;
  if (!rb) return;
  let marked = 0;
  for (const dev of [...ctx.d.devices()]) {
    if (dev.rollback?.status === 'sent') {
      ctx.d.put({ ...dev, rollback: { ...dev.rollback, status: 'unreachable' } });
      rb.unreachable += 1;
      marked++;
    }
  }
  audit(ctx, 'engine', 'deployment.rollback-deadline', { unreachable: marked });
  checkRollbackDone(ctx);
}

/** Counts over every wave up to the current one, for the early hard limits. */
function cumulativeCounts(core: DeploymentCore): HardGateCounts {
  const c: HardGateCounts = { canary: 0, reporting: 0, installFailures: 0, trialFailures: 0, silentCanary: 0, control: 0, silentControl: 0 };
  for (const w of core.waves) {
    if (w.startedAt === undefined) continue;
    const k = w.counts;
    c.canary += k.tracked - k.offline - k.ineligible;
    c.reporting += k.reporting;
    c.installFailures += k.failed + k.timedOut;
    c.trialFailures += k.trialFailures;
    c.silentCanary += k.timedOut;
  }
  return c;
}

/**
 * Hard limits applied as soon as device status shows them, without waiting for the soak: any trial
 * failure (when the policy says so), or install failures above the allowed share of the WHOLE set of
 * exposed devices (a denominator that only grows, so this never fires earlier than the gate would).
 */
export function checkEarlyHardLimits(ctx: Ctx): void {
  const core = ctx.d.core;
  if (!['pending', 'rolling', 'soaking', 'gating'].includes(core.phase)) return;
  if (core.phase === 'pending' && core.waves[0]!.startedAt === undefined) return;
  const counts = cumulativeCounts(core);
  const policy = gatePolicyFor(core.spec, core.current);
  const evidence = [checkTrialFailures(counts, policy), checkInstallFailures(counts, policy)];
  const breached = evidence.find((e) => e.result === 'critical');
  if (!breached) return;
  const rule = `hard-limit:${breached.check} (early)`;
  const decision: DecisionRecord = {
    id: engineDecisionId(ctx, core.current, 'early'),
    deploymentId: core.spec.id,
    wave: core.current,
    attempt: 0,
    at: ctx.now,
    source: 'early-hard-limit',
    inputsDigest: inputsDigest(counts),
    policy: { ...policy },
    analyzers: [
      {
        name: 'hard-gates',
        role: 'hard',
        ok: true,
        latencyMs: 0,
        verdict: { recommendation: 'Abort', riskLevel: 'Critical', issues: breached.note ? [breached.note] : [], rule, evidence },
        applied: 'Abort',
      },
    ],
    final: { recommendation: 'Abort', riskLevel: 'Critical', rule, issues: breached.note ? [breached.note] : [] },
  };
  ctx.effects.push({ type: 'record-decision', decision });
  const w = currentWave(ctx);
  w.verdict = 'Abort';
  w.decisionId = decision.id;
  abortDeployment(ctx, 'gate', rule, core.spec.rollback.auto);
}
