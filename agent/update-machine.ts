/**
 * The agent's update state machine: `step(state, event, now) → {state, effects}`. Pure.
 *
 * Modelled on Mender (Download → Install → Reboot → VerifyReboot → Commit, else Rollback) and RAUC
 * (mark-good / mark-bad). The shell persists the returned state atomically *before* it carries out any
 * effect, so a kill between two effects replays from the last recorded stage: the `boot` event
 * re-derives the effects of the recorded stage from the bootloader's view of the boot (resume the
 * download with Range, rewrite the inactive slot, re-arm and reboot, continue the trial, finish the
 * commit, or notice that the bootloader fell back and report it honestly).
 *
 *   downloading → verifying → installing → rebooting → trial → committing → done(committed)
 *   any pre-reboot stage → done(failed | rejected) ; trial → reverting → done(rolled-back)
 *   rollback command: rebooting → trial → committing → done(rolled-back)   (reported as rolling-back)
 */
import type { Manifest, Command } from '../protocol/signed.js';
import type { UpdateReason } from '../protocol/reasons.js';
import type { UpdateState, SlotName } from '../protocol/update-state.js';
import { otherSlot } from '../protocol/update-state.js';
import type { Verified } from '../firmware/manifest.js';
import {
  HANDLED_LIMIT,
  SEEN_COMMANDS_LIMIT,
  currentVersion,
  isBusy,
  isPreReboot,
  remember,
  reportedState,
  type AgentState,
  type Artifact,
  type Job,
} from './agent-state.js';

/** What the bootloader says about the boot the agent runs in (plus a boot id to tell boots apart). */
export interface BootInfo {
  booted: SlotName;
  primary: SlotName;
  trial: boolean;
  bootId: string;
}

/** Knobs from the agent config the machine needs (durations in ms). */
export interface MachineConfig {
  maxDownloadAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  trialWindowMs: number;
}

export type UpdateEvent =
  | { type: 'boot'; boot: BootInfo }
  | { type: 'rollout'; deploymentId: string; wave: number; verified: Verified<Manifest> }
  | { type: 'rollout-cleared' }
  | { type: 'download-progress'; deploymentId: string; bytes: number }
  | { type: 'download-finished'; deploymentId: string }
  | {
      type: 'download-failed';
      deploymentId: string;
      reason: Extract<UpdateReason, 'download-failed' | 'size-mismatch' | 'hash-mismatch'>;
      detail: string;
      retryable: boolean;
    }
  | { type: 'retry-due'; deploymentId: string }
  | { type: 'verify-done'; deploymentId: string; ok: boolean; detail?: string }
  | { type: 'slot-written'; deploymentId: string }
  | { type: 'slot-failed'; deploymentId: string; reason: Extract<UpdateReason, 'write-failed' | 'readback-failed' | 'internal-error'>; detail: string }
  | { type: 'health-passed'; deploymentId: string }
  | { type: 'health-failed'; deploymentId: string; reason: Extract<UpdateReason, 'health-check-failed' | 'broker-unreachable'>; detail: string }
  | { type: 'trial-timeout'; deploymentId: string }
  | { type: 'marked-good'; deploymentId: string }
  | { type: 'command'; command: Command };

export type UpdateEffect =
  | { type: 'report'; deploymentId: string; state: UpdateState; fromVersion: string; toVersion: string; seq: number; reason?: UpdateReason; detail?: string; progress?: { bytes: number; total: number } }
  | { type: 'download'; deploymentId: string; artifact: Artifact }
  | { type: 'cancel-download'; deploymentId: string }
  | { type: 'schedule-retry'; deploymentId: string; at: number }
  | { type: 'verify'; deploymentId: string; artifact: Artifact }
  | { type: 'discard-download'; deploymentId: string }
  | { type: 'write-slot'; deploymentId: string; artifact: Artifact }
  | { type: 'arm-trial' }
  | { type: 'reboot' }
  | { type: 'start-trial'; deploymentId: string; deadlineAt: number }
  | { type: 'stop-trial' }
  | { type: 'mark-good'; deploymentId: string }
  | { type: 'mark-bad' }
  | { type: 'report-now' }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

export interface StepResult {
  state: AgentState;
  effects: UpdateEffect[];
}

/** Restarts on the same boot in the `rebooting` stage before the agent gives the trial up. */
export const MAX_REBOOT_RETRIES = 3;

const none = (state: AgentState): StepResult => ({ state, effects: [] });
const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): UpdateEffect =>
  fields ? { type: 'log', level, msg, fields } : { type: 'log', level, msg };

/** Backoff before download attempt `attempts + 1`: base · 2^(attempts−1), capped. Jitter is the shell's. */
export function retryDelay(attempts: number, cfg: MachineConfig): number {
  return Math.min(cfg.retryMaxMs, cfg.retryBaseMs * 2 ** Math.max(0, attempts - 1));
}

/** Replaces the job, bumps seq and emits the status report for the job's (new) reported state. */
function transition(
  state: AgentState,
  job: Job,
  now: number,
  extra: Partial<Pick<AgentState, 'slotVersions' | 'securityFloor' | 'handled'>> = {},
  progress?: { bytes: number; total: number },
): StepResult {
  const next: Job = { ...job, updatedAt: now };
  let handled = extra.handled ?? state.handled;
  if (next.stage === 'done') handled = remember(handled, next.deploymentId, HANDLED_LIMIT);
  const seq = state.seq + 1;
  const s: AgentState = { ...state, ...extra, handled, seq, job: next };
  const report: UpdateEffect = {
    type: 'report',
    deploymentId: next.deploymentId,
    state: reportedState(next),
    fromVersion: next.fromVersion,
    toVersion: next.toVersion,
    seq,
    ...(next.reason !== undefined ? { reason: next.reason } : {}),
    ...(next.detail !== undefined ? { detail: next.detail } : {}),
    ...(progress ? { progress } : {}),
  };
  return { state: s, effects: [report] };
}

function finish(state: AgentState, job: Job, result: UpdateState, now: number, reason?: UpdateReason, detail?: string): StepResult {
  const done: Job = { ...job, stage: 'done', result };
  delete done.retryAt;
  delete done.revertRequested;
  if (reason !== undefined) done.reason = reason;
  else delete done.reason;
  if (detail !== undefined) done.detail = detail.slice(0, 512);
  else delete done.detail;
  return transition(state, done, now);
}

/** Versions for a `rolled-back` report: from the abandoned version to the one now running. */
function rolledBack(state: AgentState, job: Job, now: number, reason: UpdateReason, detail?: string): StepResult {
  const swapped: Job = { ...job, fromVersion: job.toVersion, toVersion: job.fromVersion };
  return finish(state, swapped, 'rolled-back', now, reason, detail);
}

function ownsEvent(state: AgentState, deploymentId: string, ...stages: Job['stage'][]): Job | null {
  const job = state.job;
  if (!job || job.deploymentId !== deploymentId || !stages.includes(job.stage)) return null;
  return job;
}

export function step(state: AgentState, event: UpdateEvent, now: number, cfg: MachineConfig): StepResult {
  switch (event.type) {
    case 'boot':
      return onBoot(state, event.boot, now, cfg);
    case 'rollout':
      return onRollout(state, event, now);
    case 'rollout-cleared':
      return onAbort(state, now);
    case 'download-progress': {
      const job = ownsEvent(state, event.deploymentId, 'downloading');
      if (!job?.artifact) return none(state);
      const total = job.artifact.size;
      const tenths = Math.min(10, Math.floor((event.bytes * 10) / total));
      if (tenths <= job.reportedTenths) return none({ ...state, job: { ...job, bytes: event.bytes } });
      return transition(state, { ...job, bytes: event.bytes, reportedTenths: tenths }, now, {}, { bytes: event.bytes, total });
    }
    case 'download-finished': {
      const job = ownsEvent(state, event.deploymentId, 'downloading');
      if (!job?.artifact) return none(state);
      const r = transition(state, { ...job, stage: 'verifying', bytes: job.artifact.size }, now);
      r.effects.push({ type: 'verify', deploymentId: job.deploymentId, artifact: job.artifact });
      return r;
    }
    case 'download-failed': {
      const job = ownsEvent(state, event.deploymentId, 'downloading');
      if (!job) return none(state);
      const attempts = job.attempts + 1;
      if (event.retryable && attempts < cfg.maxDownloadAttempts) {
        const at = now + retryDelay(attempts, cfg);
        return {
          state: { ...state, job: { ...job, attempts, retryAt: at, updatedAt: now } },
          effects: [
            log('warn', 'download attempt failed; retrying after backoff', { attempts, detail: event.detail, retryAt: at }),
            { type: 'schedule-retry', deploymentId: job.deploymentId, at },
          ],
        };
      }
      const r = finish(state, { ...job, attempts }, 'failed', now, event.reason, event.detail);
      r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
      return r;
    }
    case 'retry-due': {
      const job = ownsEvent(state, event.deploymentId, 'downloading');
      if (!job?.artifact) return none(state);
      const next = { ...job };
      delete next.retryAt;
      return { state: { ...state, job: next }, effects: [{ type: 'download', deploymentId: job.deploymentId, artifact: job.artifact }] };
    }
    case 'verify-done': {
      const job = ownsEvent(state, event.deploymentId, 'verifying');
      if (!job?.artifact) return none(state);
      if (!event.ok) {
        const r = finish(state, job, 'failed', now, 'hash-mismatch', event.detail ?? 'the downloaded image does not match the manifest');
        r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
        return r;
      }
      // The inactive slot stops holding its old firmware the moment we start writing it.
      const slotVersions = { ...state.slotVersions };
      delete slotVersions[job.toSlot];
      const r = transition(state, { ...job, stage: 'installing' }, now, { slotVersions });
      r.effects.push({ type: 'write-slot', deploymentId: job.deploymentId, artifact: job.artifact });
      return r;
    }
    case 'slot-written': {
      const job = ownsEvent(state, event.deploymentId, 'installing');
      if (!job) return none(state);
      const slotVersions = { ...state.slotVersions, [job.toSlot]: job.toVersion };
      return toRebooting(state, job, now, slotVersions);
    }
    case 'slot-failed': {
      const job = ownsEvent(state, event.deploymentId, 'installing', 'rebooting');
      if (!job) return none(state);
      const r = finish(state, job, 'failed', now, event.reason, event.detail);
      r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
      return r;
    }
    case 'health-passed': {
      const job = ownsEvent(state, event.deploymentId, 'trial');
      if (!job) return none(state);
      return {
        state: { ...state, job: { ...job, stage: 'committing', updatedAt: now } },
        effects: [{ type: 'stop-trial' }, { type: 'mark-good', deploymentId: job.deploymentId }],
      };
    }
    case 'health-failed': {
      const job = ownsEvent(state, event.deploymentId, 'trial');
      if (!job) return none(state);
      return toReverting(state, job, now, event.reason, event.detail);
    }
    case 'trial-timeout': {
      const job = ownsEvent(state, event.deploymentId, 'trial');
      if (!job) return none(state);
      return toReverting(state, job, now, 'trial-timeout', `not committed within ${cfg.trialWindowMs} ms`);
    }
    case 'marked-good': {
      const job = ownsEvent(state, event.deploymentId, 'committing');
      if (!job) return none(state);
      return onCommitted(state, job, now);
    }
    case 'command':
      return onCommand(state, event.command, now);
  }
}

function toRebooting(state: AgentState, job: Job, now: number, slotVersions = state.slotVersions): StepResult {
  const r = transition(state, { ...job, stage: 'rebooting', bootId: state.lastBootId ?? '' }, now, { slotVersions });
  r.effects.push({ type: 'arm-trial' }, { type: 'reboot' });
  return r;
}

function toReverting(state: AgentState, job: Job, now: number, reason: UpdateReason, detail?: string): StepResult {
  const next: Job = { ...job, stage: 'reverting', reason, bootId: state.lastBootId ?? '' };
  if (detail !== undefined) next.detail = detail.slice(0, 512);
  const r = transition(state, next, now);
  r.effects.unshift({ type: 'stop-trial' });
  r.effects.push({ type: 'mark-bad' }, { type: 'reboot' });
  return r;
}

function onCommitted(state: AgentState, job: Job, now: number): StepResult {
  if (job.kind === 'rollback') return finish(state, job, 'rolled-back', now, 'rollback-command', job.detail);
  const securityFloor = Math.max(state.securityFloor, job.securityVersion ?? 0);
  const r = finish({ ...state, securityFloor }, job, 'committed', now);
  r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
  return r;
}

function startTrial(state: AgentState, job: Job, now: number, cfg: MachineConfig): StepResult {
  const trialStartedAt = job.trialStartedAt ?? now;
  const next: Job = { ...job, stage: 'trial', trialStartedAt };
  const r = job.stage === 'trial' ? { state: { ...state, job: next }, effects: [] as UpdateEffect[] } : transition(state, next, now);
  r.effects.push({ type: 'start-trial', deploymentId: job.deploymentId, deadlineAt: trialStartedAt + cfg.trialWindowMs });
  return r;
}

/** The report of the job's current state again, with its seq unchanged (the coordinator dedups by seq). */
function reReport(state: AgentState, job: Job): UpdateEffect {
  return {
    type: 'report',
    deploymentId: job.deploymentId,
    state: reportedState(job),
    fromVersion: job.fromVersion,
    toVersion: job.toVersion,
    seq: state.seq,
    ...(job.reason !== undefined ? { reason: job.reason } : {}),
    ...(job.detail !== undefined ? { detail: job.detail } : {}),
  };
}

/**
 * Resumes the recorded stage against what the bootloader says about this boot. A report lost to the
 * crash (state saved, message not yet sent) is sent again: status delivery is at least once.
 */
function onBoot(prev: AgentState, boot: BootInfo, now: number, cfg: MachineConfig): StepResult {
  const r = resumeStage(prev, boot, now, cfg);
  const job = prev.job;
  if (job && !r.effects.some((e) => e.type === 'report')) r.effects.unshift(reReport(prev, job));
  return r;
}

function resumeStage(prev: AgentState, boot: BootInfo, now: number, cfg: MachineConfig): StepResult {
  const state: AgentState = { ...prev, booted: boot.booted, lastBootId: boot.bootId };
  const job = state.job;
  const fellBack = (j: Job) => boot.booted === j.fromSlot && (!j.bootId || j.bootId !== boot.bootId);
  if (!job || job.stage === 'done') {
    if (boot.trial) {
      // A trial we did not arm (state lost or restored from backup): never commit unknown firmware.
      return { state, effects: [log('warn', 'booted an unexpected trial slot; marking it bad'), { type: 'mark-bad' }, { type: 'reboot' }] };
    }
    return none(state);
  }
  switch (job.stage) {
    case 'downloading':
      if (job.retryAt !== undefined && job.retryAt > now) {
        return { state, effects: [{ type: 'schedule-retry', deploymentId: job.deploymentId, at: job.retryAt }] };
      }
      return { state, effects: job.artifact ? [{ type: 'download', deploymentId: job.deploymentId, artifact: job.artifact }] : [] };
    case 'verifying':
      return { state, effects: job.artifact ? [{ type: 'verify', deploymentId: job.deploymentId, artifact: job.artifact }] : [] };
    case 'installing':
      // An interrupted write leaves the inactive slot undefined: rewrite it from the verified download.
      return { state, effects: job.artifact ? [{ type: 'write-slot', deploymentId: job.deploymentId, artifact: job.artifact }] : [] };
    case 'rebooting':
    case 'trial':
      if (boot.booted === job.toSlot && boot.trial) {
        if (job.revertRequested) return toReverting(state, job, now, job.revertRequested, job.detail);
        return startTrial(state, job, now, cfg);
      }
      if (boot.booted === job.toSlot) return onCommitted(state, job, now);
      if (job.stage === 'rebooting' && !fellBack(job) && job.revertRequested) {
        // Asked to stop before the reboot happened: do not reboot into the update. The armed one-shot
        // trial, if any, is reverted by the unexpected-trial rule should the device reboot later.
        return finish(state, job, 'failed', now, job.revertRequested, job.detail);
      }
      if (job.stage === 'rebooting' && !fellBack(job)) {
        // Killed between recording the stage and the reboot itself: arm again (idempotent) and reboot.
        // Bounded, so a backend whose reboot never happens cannot trap the device in a loop.
        if (job.rebootRetries >= MAX_REBOOT_RETRIES) return trialBootFailed(state, job, now);
        const next: Job = { ...job, rebootRetries: job.rebootRetries + 1, updatedAt: now };
        return { state: { ...state, job: next }, effects: [{ type: 'arm-trial' }, { type: 'reboot' }] };
      }
      return trialBootFailed(state, job, now);
    case 'committing':
      if (boot.booted === job.toSlot && boot.trial) return { state, effects: [{ type: 'mark-good', deploymentId: job.deploymentId }] };
      if (boot.booted === job.toSlot) return onCommitted(state, job, now);
      return trialBootFailed(state, job, now);
    case 'reverting':
      if (boot.booted === job.fromSlot) {
        const reason = job.reason ?? 'internal-error';
        if (job.kind === 'rollback') return finish(state, job, 'failed', now, reason, job.detail);
        return rolledBack(state, job, now, reason, job.detail);
      }
      if (boot.trial) return { state, effects: [{ type: 'mark-bad' }, { type: 'reboot' }] };
      // The bootloader committed the slot we were leaving: report honestly rather than loop.
      return finish(state, job, 'failed', now, 'internal-error', 'bootloader kept the trial slot after mark-bad');
  }
}

function trialBootFailed(state: AgentState, job: Job, now: number): StepResult {
  const detail = `the bootloader fell back to slot ${job.fromSlot}: slot ${job.toSlot} did not come up and commit`;
  if (job.kind === 'rollback') return finish(state, job, 'failed', now, 'trial-boot-failed', detail);
  return rolledBack(state, job, now, 'trial-boot-failed', detail);
}

function onRollout(state: AgentState, ev: Extract<UpdateEvent, { type: 'rollout' }>, now: number): StepResult {
  if (state.handled.includes(ev.deploymentId)) return none(state);
  const job = state.job;
  if (job && job.deploymentId === ev.deploymentId) return none(state);
  if (job && isBusy(state)) {
    if (!isPreReboot(job)) {
      return { state, effects: [log('info', 'rollout waits: another update is past its reboot', { deploymentId: ev.deploymentId, busyWith: job.deploymentId })] };
    }
    const superseded = finish(state, job, 'failed', now, 'superseded', `replaced by deployment ${ev.deploymentId}`);
    const next = onRollout(superseded.state, ev, now);
    return {
      state: next.state,
      effects: [
        { type: 'cancel-download', deploymentId: job.deploymentId },
        { type: 'discard-download', deploymentId: job.deploymentId },
        ...superseded.effects,
        ...next.effects,
      ],
    };
  }
  const from = currentVersion(state) ?? '0.0.0';
  const base = {
    deploymentId: ev.deploymentId,
    wave: ev.wave,
    fromSlot: state.booted,
    toSlot: otherSlot(state.booted),
    fromVersion: from,
    attempts: 0,
    bytes: 0,
    reportedTenths: 0,
    rebootRetries: 0,
    updatedAt: now,
  };
  if (!ev.verified.ok) {
    const rejected: Job = { ...base, kind: 'install', stage: 'done', toVersion: from };
    return finish(state, rejected, 'rejected', now, ev.verified.reason, ev.verified.detail);
  }
  const m = ev.verified.value;
  if (m.deploymentId !== undefined && m.deploymentId !== ev.deploymentId) {
    const rejected: Job = { ...base, kind: 'install', stage: 'done', toVersion: m.firmwareVersion };
    return finish(state, rejected, 'rejected', now, 'malformed', `manifest was signed for deployment ${m.deploymentId}`);
  }
  const newJob: Job = {
    ...base,
    kind: 'install',
    stage: 'downloading',
    toVersion: m.firmwareVersion,
    artifact: { url: m.artifact.url, size: m.artifact.size, sha256: m.artifact.sha256 },
    securityVersion: m.securityVersion,
  };
  if (m.firmwareVersion === from) return finish(state, newJob, 'already-installed', now);
  const r = transition(state, newJob, now, {}, { bytes: 0, total: m.artifact.size });
  r.effects.push({ type: 'download', deploymentId: ev.deploymentId, artifact: newJob.artifact! });
  return r;
}

function onAbort(state: AgentState, now: number): StepResult {
  const job = state.job;
  if (!job || job.kind !== 'install' || job.stage === 'done') return none(state);
  if (job.stage === 'rebooting') {
    // Armed and about to reboot: the trial boot (if it happens) goes straight back to the old slot.
    return {
      state: { ...state, job: { ...job, revertRequested: 'aborted', detail: 'the coordinator cleared the wave during the reboot', updatedAt: now } },
      effects: [log('warn', 'wave cleared during the reboot into the update; the trial will be reverted at once', { deploymentId: job.deploymentId })],
    };
  }
  if (!isPreReboot(job)) {
    return { state, effects: [log('warn', 'wave cleared after the trial began; the trial runs its course', { deploymentId: job.deploymentId })] };
  }
  const r = finish(state, job, 'failed', now, 'aborted', 'the coordinator cleared the wave before the trial');
  r.effects.unshift({ type: 'cancel-download', deploymentId: job.deploymentId });
  r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
  return r;
}

function onCommand(prev: AgentState, command: Command, now: number): StepResult {
  // Recorded before the effect: a crash after a reboot command must not replay it.
  const state: AgentState = { ...prev, seenCommands: remember(prev.seenCommands, command.commandId, SEEN_COMMANDS_LIMIT) };
  switch (command.action) {
    case 'report-now':
      return { state, effects: [{ type: 'report-now' }] };
    case 'reboot':
      return { state, effects: [log('info', 'reboot command', { commandId: command.commandId }), { type: 'reboot' }] };
    case 'rollback':
      return onRollbackCommand(state, command, now);
  }
}

function onRollbackCommand(state: AgentState, command: Command, now: number): StepResult {
  const job = state.job;
  const detail = `rollback command ${command.commandId}`;
  const targets = (j: Job | null) => command.deploymentId === undefined || j?.deploymentId === command.deploymentId;
  if (job && job.stage !== 'done' && targets(job)) {
    if (isPreReboot(job)) {
      const r = rolledBack(state, job, now, 'rollback-command', `${detail}: cancelled before the install finished`);
      r.effects.unshift({ type: 'cancel-download', deploymentId: job.deploymentId });
      r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
      return r;
    }
    if (job.stage === 'trial' || job.stage === 'committing') return toReverting(state, job, now, 'rollback-command', detail);
    if (job.stage === 'rebooting') return none({ ...state, job: { ...job, revertRequested: 'rollback-command', detail } });
    return { state, effects: [log('info', 'rollback command ignored: already reverting', { commandId: command.commandId })] };
  }
  if (job && job.stage !== 'done') {
    return { state, effects: [log('warn', 'rollback command for another deployment ignored while busy', { commandId: command.commandId })] };
  }
  const current = currentVersion(state);
  const other = otherSlot(state.booted);
  const previous = state.slotVersions[other];
  if (command.deploymentId !== undefined && job?.deploymentId !== command.deploymentId) {
    // Undoing a deployment this device does not run now would revert some other release.
    return { state, effects: [log('info', 'rollback command ignored: that deployment is not what this device runs', { commandId: command.commandId, deploymentId: command.deploymentId })] };
  }
  if (job && command.deploymentId !== undefined && !(job.kind === 'install' && job.result === 'committed')) {
    // Nothing of this deployment runs here (failed, rejected or already rolled back): re-report its outcome.
    const r = transition(state, { ...job, updatedAt: now }, now);
    r.effects.unshift(log('info', 'rollback command: deployment is not installed here; re-reporting its outcome', { commandId: command.commandId }));
    return r;
  }
  const deploymentId = command.deploymentId ?? job?.deploymentId;
  if (previous === undefined || current === undefined || deploymentId === undefined) {
    return { state, effects: [log('warn', 'rollback command: the other slot holds no known firmware; nothing to roll back to', { commandId: command.commandId })] };
  }
  const rollback: Job = {
    kind: 'rollback',
    deploymentId,
    stage: 'rebooting',
    fromVersion: current,
    toVersion: previous,
    fromSlot: state.booted,
    toSlot: other,
    attempts: 0,
    bytes: 0,
    reportedTenths: 0,
    rebootRetries: 0,
    commandId: command.commandId,
    detail,
    updatedAt: now,
  };
  return toRebooting(state, rollback, now);
}
