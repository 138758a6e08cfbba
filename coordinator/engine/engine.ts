/**
 * The rollout engine: `step(state, event, now) → {state, effects}`. Pure — no clock, no I/O; the
 * engine runner carries out the effects after persisting the new state.
 *
 *   draft ─start→ scheduled ─startAt→ pending(wave i) ─approval+window→ rolling ─all finished or
 *   deadline→ soaking ─soak→ gating ─Proceed→ pending(i+1) … → completed
 *                                    ─Monitor→ soaking (extended, up to the limit, then held)
 *                                    ─Abort→ rolling-back ─all confirmed or deadline→ rolled-back
 *   operator: start, pause, resume, abort, rollback, promote, approve (any time they make sense).
 *   while it runs (draft … gating): its manifest is signed afresh half-way through each lifetime
 *   (manifest-renewal.ts) and re-published on the topics its waves reached.
 */
import { computeWaitingFor, enterPending, tryStartPending, completeWave, beginGate, applyDecision, abortDeployment, startRollback, expireRollback, checkWaveComplete, publishWave, clearPublished, gatePolicyFor } from './engine-waves.js';
import { onHello, onMembers, onPresence, onStatus } from './engine-devices.js';
import { manifestRenewAt, onManifestRenewalFailed, onManifestRenewed, requestRenewalIfDue } from './manifest-renewal.js';
import { audit, currentWave, reject, type Ctx } from './engine-context.js';
import { Draft, emptyCounts } from './device-progress.js';
import { nextWindowStart } from './maintenance-window.js';
import type { DecisionRecord } from '../gate/decision.js';
import { bucketsOfWave } from './wave-plan.js';
import { bucketOf } from '@fleet/protocol/bucket';
import {
  FINAL_PHASES,
  type DeploymentCore,
  type DeploymentSpec,
  type DeploymentState,
  type EngineEffect,
  type EngineEvent,
  type OperatorAction,
  type StepResult,
} from './types.js';
import { definedProps } from '@fleet/firmware/defined-props';

export { gatePolicyFor };

/** A new deployment in `draft`, before `createDeployment` starts it. */
export function initialState(spec: DeploymentSpec, now: number): DeploymentState {
  const core: DeploymentCore = {
    spec,
    phase: 'draft',
    current: 0,
    waves: spec.waves.map((_, index) => ({ index, status: 'pending', membersKnown: false, gateAttempt: 0, monitorCount: 0, counts: emptyCounts() })),
    waitingFor: ['operator'],
    approvals: [],
    updatedAt: now,
    revision: 0,
  };
  return { core, devices: {} };
}

/** Creates a deployment: a draft stays a draft; otherwise it is started (scheduled or wave 0 pending). */
export function createDeployment(spec: DeploymentSpec, now: number, actor: string): StepResult {
  const state = initialState(spec, now);
  const ctx: Ctx = { d: new Draft(state), now, effects: [] };
  audit(ctx, actor, 'deployment.created', { firmwareVersion: spec.firmwareVersion, waves: spec.waves.map((w) => w.percent), draft: spec.draft, ...definedProps({ description: spec.description }) });
  if (!spec.draft) start(ctx, actor);
  return finish(ctx, state);
}

function start(ctx: Ctx, actor: string): void {
  const core = ctx.d.core;
  const startAt = core.spec.startAt;
  if (startAt !== undefined && startAt > ctx.now) {
    core.phase = 'scheduled';
    core.waitingFor = ['start-time'];
    audit(ctx, actor, 'deployment.scheduled', { startAt });
    return;
  }
  enterPending(ctx, 0, actor);
}

export function step(state: DeploymentState, event: EngineEvent, now: number): StepResult {
  // Fast path: presence of a device this deployment does not track (the runner fans presence out to
  // every live deployment) changes nothing and should cost nothing.
  if (event.type === 'device-presence') {
    const prev = state.devices[bucketOf(event.deviceId)]?.[event.deviceId];
    if (!prev || prev.online === event.online) return { state, effects: [], changedDevices: [] };
  }
  const ctx: Ctx = { d: new Draft(state), now, effects: [] };
  switch (event.type) {
    case 'tick':
      onTick(ctx);
      break;
    case 'device-status':
      onStatus(ctx, event.status, event.hardwareModel);
      break;
    case 'device-hello':
      onHello(ctx, event.hello);
      break;
    case 'device-presence':
      onPresence(ctx, event.deviceId, event.online);
      break;
    case 'wave-members':
      onMembers(ctx, event.wave, event.members);
      break;
    case 'gate-result':
      onGateResult(ctx, event.wave, event.attempt, event.decision);
      break;
    case 'operator':
      onOperator(ctx, event.action, event.actor);
      break;
    case 'manifest-renewed':
      onManifestRenewed(ctx, event.manifest);
      break;
    case 'manifest-renewal-failed':
      onManifestRenewalFailed(ctx, event.error);
      break;
  }
  if (ctx.rejected) return { state, effects: [], changedDevices: [], rejected: ctx.rejected };
  return finish(ctx, state);
}

/** Asks for a manifest renewal when one is due, bumps the revision when anything changed, and schedules the next wake-up. */
function finish(ctx: Ctx, before: DeploymentState): StepResult {
  const core = ctx.d.core;
  // After every other effect of the step: a wave it started publishes the current manifest first,
  // and the renewal then replaces it on every published topic.
  requestRenewalIfDue(ctx);
  // Anomalies change nothing: the state (and its revision) stays, so a device repeating an unoffered
  // status costs no write of the deployment.
  if (ctx.effects.every((e) => e.type === 'device-anomaly') && ctx.d.changed.size === 0 && sameCore(core, before.core)) {
    return { state: before, effects: [...ctx.effects], changedDevices: [] };
  }
  core.waitingFor = computeWaitingFor(core, ctx.now);
  if (core.pause && core.phase === 'pending' && !core.waitingFor.includes('operator')) core.waitingFor.push('operator');
  core.revision += 1;
  core.updatedAt = ctx.now;
  const state = ctx.d.toState();
  const wake = nextWakeAt(state, ctx.now);
  const effects: EngineEffect[] = [...ctx.effects];
  if (wake !== undefined) effects.push({ type: 'schedule-wake', at: wake });
  return { state, effects, changedDevices: [...ctx.d.changed.values()] };
}

/** Equal apart from the (shared, immutable) spec and manifest. */
function sameCore(a: DeploymentCore, b: DeploymentCore): boolean {
  const strip = (c: DeploymentCore) => JSON.stringify({ ...c, spec: undefined, manifest: undefined });
  return a.spec === b.spec && a.manifest === b.manifest && strip(a) === strip(b);
}

function onTick(ctx: Ctx): void {
  const core = ctx.d.core;
  const now = ctx.now;
  if (core.phase === 'rolling-back') {
    if (core.rollback && now >= core.rollback.deadlineAt) expireRollback(ctx);
    return;
  }
  if (core.pause) return;
  switch (core.phase) {
    case 'scheduled':
      if (core.spec.startAt === undefined || now >= core.spec.startAt) enterPending(ctx, 0, 'engine');
      return;
    case 'pending':
      tryStartPending(ctx, 'engine');
      return;
    case 'rolling': {
      const w = currentWave(ctx);
      if (w.deadlineAt !== undefined && now >= w.deadlineAt) completeWave(ctx, 'deadline', 'engine');
      else checkWaveComplete(ctx);
      return;
    }
    case 'soaking': {
      const w = currentWave(ctx);
      if (w.soakEndsAt !== undefined && now >= w.soakEndsAt) beginGate(ctx);
      return;
    }
    case 'draft':
    case 'gating':
    case 'completed':
    case 'aborted':
    case 'rolled-back':
      return;
  }
}

function onGateResult(ctx: Ctx, wave: number, attempt: number, decision: DecisionRecord): void {
  const core = ctx.d.core;
  // Every decision is recorded, even a stale one: it was computed and an operator may want to see it.
  ctx.effects.push({ type: 'record-decision', decision });
  const w = core.waves[wave];
  if (core.phase !== 'gating' || wave !== core.current || !w || attempt !== w.gateAttempt) {
    audit(ctx, 'gate', 'deployment.gate-result-stale', { wave, attempt, phase: core.phase, verdict: decision.final.recommendation });
    return;
  }
  applyDecision(ctx, decision);
}

const ACTIVE_RUN = ['scheduled', 'pending', 'rolling', 'soaking', 'gating'] as const;
const inRun = (phase: string): boolean => (ACTIVE_RUN as readonly string[]).includes(phase);

function onOperator(ctx: Ctx, action: OperatorAction, actor: string): void {
  const first = ctx.effects.length;
  applyOperator(ctx, action, actor);
  // The operator's reason is recorded with every audit entry the action caused.
  if (action.reason === undefined) return;
  for (const e of ctx.effects.slice(first)) {
    if (e.type === 'audit' && e.entry.detail['reason'] === undefined) e.entry.detail = { ...e.entry.detail, reason: action.reason };
  }
}

function applyOperator(ctx: Ctx, action: OperatorAction, actor: string): void {
  const core = ctx.d.core;
  const phase = core.phase;
  const who = `operator:${actor}`;
  switch (action.type) {
    case 'start':
      if (phase !== 'draft') return reject(ctx, 'invalid-action', `deployment ${core.spec.id} is ${phase}, not a draft; only a draft can be started`);
      audit(ctx, who, 'deployment.started');
      return start(ctx, who);
    case 'pause':
      if (!inRun(phase)) return reject(ctx, 'invalid-action', `deployment ${core.spec.id} is ${phase}; only a running deployment can be paused`);
      if (core.pause) return reject(ctx, 'already-paused', `deployment ${core.spec.id} is already paused (${core.pause.cause}); resume, promote or abort it`);
      core.pause = { at: ctx.now, by: who, cause: 'operator', ...definedProps({ reason: action.reason }) };
      audit(ctx, who, 'deployment.paused', { reason: action.reason ?? null });
      return;
    case 'resume':
      return resume(ctx, who);
    case 'abort':
      if (!inRun(phase) && phase !== 'draft') {
        return reject(ctx, 'invalid-action', `deployment ${core.spec.id} is ${phase} and cannot be aborted${phase === 'completed' ? '; use rollback to undo it' : ''}`);
      }
      return abortDeployment(ctx, who, action.reason ?? 'aborted by operator', action.rollback);
    case 'rollback':
      if (phase === 'rolling-back' || phase === 'rolled-back') return reject(ctx, 'invalid-action', `deployment ${core.spec.id} is already ${phase}`);
      if (core.waves.every((w) => w.startedAt === undefined)) {
        return reject(ctx, 'nothing-to-roll-back', `deployment ${core.spec.id} never published a wave; use abort to stop it`);
      }
      if (phase === 'aborted') return startRollback(ctx, who, action.reason ?? 'rollback ordered by operator', true);
      return abortDeployment(ctx, who, action.reason ?? 'rollback ordered by operator', true);
    case 'promote':
      return promote(ctx, who);
    case 'approve':
      return approve(ctx, who, action.wave);
  }
}

function resume(ctx: Ctx, who: string): void {
  const core = ctx.d.core;
  const pause = core.pause;
  if (!pause) return reject(ctx, 'not-paused', `deployment ${core.spec.id} is not paused`);
  const pausedFor = Math.max(0, ctx.now - pause.at);
  delete core.pause;
  const w = currentWave(ctx);
  // Timers froze while paused: the wave keeps the time it had left.
  if (core.phase === 'rolling' && w.deadlineAt !== undefined) w.deadlineAt += pausedFor;
  if (core.phase === 'soaking' && w.soakEndsAt !== undefined) {
    if (pause.cause === 'monitor-limit') {
      // A held wave is judged again with a fresh round of Monitor extensions.
      w.monitorCount = 0;
      w.soakEndsAt = ctx.now;
    } else {
      w.soakEndsAt += pausedFor;
    }
  }
  audit(ctx, who, 'deployment.resumed', { pausedForMs: pausedFor, cause: pause.cause });
  onTick(ctx);
}

function promote(ctx: Ctx, who: string): void {
  const core = ctx.d.core;
  const w = currentWave(ctx);
  if (core.pause?.cause === 'operator') return reject(ctx, 'paused', `deployment ${core.spec.id} is paused; resume it first`);
  switch (core.phase) {
    case 'scheduled':
      audit(ctx, who, 'deployment.promoted', { skipped: 'start-time' });
      return enterPending(ctx, 0, who);
    case 'pending': {
      const waiting = computeWaitingFor(core, ctx.now);
      if (waiting.includes('approval')) return reject(ctx, 'needs-approval', `wave ${w.index + 1} needs approval; run approve first`);
      audit(ctx, who, 'deployment.promoted', { skipped: 'window' }, { wave: w.index });
      return tryStartPending(ctx, who, true);
    }
    case 'rolling':
      audit(ctx, who, 'deployment.promoted', { skipped: 'stragglers-and-soak' }, { wave: w.index });
      return completeWave(ctx, 'promoted', who);
    case 'soaking':
      if (core.pause?.cause === 'monitor-limit') {
        // The operator overrides a held gate: recorded as an operator decision.
        delete core.pause;
        const decision = {
          id: `${core.spec.id}.w${w.index}.operator.r${core.revision + 1}`,
          deploymentId: core.spec.id,
          wave: w.index,
          attempt: w.gateAttempt,
          at: ctx.now,
          source: 'operator' as const,
          inputsDigest: '',
          policy: { ...gatePolicyFor(core.spec, w.index) },
          analyzers: [],
          final: { recommendation: 'Proceed' as const, riskLevel: 'Medium' as const, rule: 'operator-promote: held at the Monitor limit', issues: [] },
          actor: who,
        };
        ctx.effects.push({ type: 'record-decision', decision });
        audit(ctx, who, 'deployment.promoted', { skipped: 'monitor-hold' }, { wave: w.index });
        return applyDecision(ctx, decision);
      }
      audit(ctx, who, 'deployment.promoted', { skipped: 'soak' }, { wave: w.index });
      return beginGate(ctx);
    case 'gating':
      return reject(ctx, 'gate-running', `the gate for wave ${w.index + 1} is running; wait for its decision`);
    case 'draft':
    case 'completed':
    case 'aborted':
    case 'rolling-back':
    case 'rolled-back':
      return reject(ctx, 'invalid-action', `deployment ${core.spec.id} is ${core.phase}; nothing to promote`);
  }
}

function approve(ctx: Ctx, who: string, wave: number | undefined): void {
  const core = ctx.d.core;
  if (FINAL_PHASES.includes(core.phase) || core.phase === 'completed' || core.phase === 'rolling-back') {
    return reject(ctx, 'invalid-action', `deployment ${core.spec.id} is ${core.phase}; nothing to approve`);
  }
  const target =
    wave ??
    core.waves.find((w) => w.status === 'pending' && w.index >= core.current && core.spec.waves[w.index]!.requiresApproval && !core.approvals.includes(w.index))?.index;
  if (target === undefined) return reject(ctx, 'nothing-to-approve', `no wave of deployment ${core.spec.id} is waiting for approval`);
  const ws = core.waves[target];
  if (!ws) return reject(ctx, 'invalid-action', `deployment ${core.spec.id} has no wave ${target + 1}`);
  if (!core.spec.waves[target]!.requiresApproval) return reject(ctx, 'invalid-action', `wave ${target + 1} does not require approval`);
  if (core.approvals.includes(target)) return reject(ctx, 'already-approved', `wave ${target + 1} is already approved`);
  if (ws.status !== 'pending') return reject(ctx, 'invalid-action', `wave ${target + 1} has already started`);
  core.approvals.push(target);
  ws.approvedBy = who;
  audit(ctx, who, 'deployment.wave-approved', {}, { wave: target });
  if (core.phase === 'pending' && core.current === target) tryStartPending(ctx, who);
}

/** When the engine next needs a `tick` (undefined: only events move it). */
export function nextWakeAt(state: DeploymentState, now: number): number | undefined {
  const phase = phaseWakeAt(state.core, now);
  const renew = manifestRenewAt(state.core);
  if (renew === undefined) return phase;
  return phase === undefined ? renew : Math.min(phase, renew);
}

/** When the phase's own deadline, soak, window or start time needs a `tick`. */
function phaseWakeAt(core: DeploymentCore, now: number): number | undefined {
  if (core.phase === 'rolling-back') return core.rollback?.deadlineAt;
  if (core.pause) return undefined;
  const w = core.waves[core.current];
  switch (core.phase) {
    case 'scheduled':
      return core.spec.startAt;
    case 'pending':
      return core.waitingFor.includes('window') ? nextWindowStart(core.spec.maintenanceWindows, now) : undefined;
    case 'rolling':
      return w?.deadlineAt;
    case 'soaking':
      return w?.soakEndsAt;
    case 'draft':
    case 'gating':
    case 'completed':
    case 'aborted':
    case 'rolled-back':
      return undefined;
  }
}

/**
 * The effects that re-establish the outside world from a persisted state (after a restart, effects
 * of the last step may not have been carried out): retained manifests published or cleared, missing
 * wave memberships asked for, an unanswered gate run again, unconfirmed rollback commands re-sent
 * (same command ids), and the next wake-up. All of them are idempotent.
 */
export function reconcile(state: DeploymentState, now: number): EngineEffect[] {
  const ctx: Ctx = { d: new Draft(state), now, effects: [] };
  const core = ctx.d.core;
  const published = core.waves.filter((w) => w.startedAt !== undefined);
  switch (core.phase) {
    case 'pending':
    case 'rolling':
    case 'soaking':
    case 'gating':
    case 'completed':
      for (const w of published) publishWave(ctx, w.index);
      break;
    case 'aborted':
    case 'rolling-back':
    case 'rolled-back':
      clearPublished(ctx);
      break;
    case 'draft':
    case 'scheduled':
      break;
  }
  if (!FINAL_PHASES.includes(core.phase) && core.phase !== 'rolling-back') {
    for (const w of published) if (!w.membersKnown) ctx.effects.push({ type: 'request-members', wave: w.index, buckets: bucketsOfWave(core.spec, w.index) });
  }
  if (core.phase === 'gating') ctx.effects.push({ type: 'run-gate', wave: core.current, attempt: currentWave(ctx).gateAttempt });
  if (core.phase === 'rolling-back') {
    for (const dev of ctx.d.devices()) {
      if (dev.rollback?.status === 'sent') {
        ctx.effects.push({ type: 'send-command', command: { commandId: dev.rollback.commandId, deviceId: dev.deviceId, action: 'rollback', deploymentId: core.spec.id } });
      }
    }
  }
  const wake = nextWakeAt(state, now);
  if (wake !== undefined) ctx.effects.push({ type: 'schedule-wake', at: wake });
  return ctx.effects;
}
