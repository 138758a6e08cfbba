/**
 * The building blocks of the update machine's transitions: record a new job stage with its status
 * report, finish a job, go to the reboot or back to the old slot, commit. Pure.
 */
import type { UpdateReason } from '@fleet/protocol/reasons';
import type { UpdateState } from '@fleet/protocol/update-state';
import { HANDLED_LIMIT, remember, reportedState, type AgentState, type Job } from './agent-state.js';
import type { MachineConfig, StepResult, UpdateEffect } from './update-types.js';
import { definedProps } from '@fleet/firmware/defined-props';

/** Restarts on the same boot in the `rebooting` stage before the agent gives the trial up. */
export const MAX_REBOOT_RETRIES = 3;

/**
 * Busy refusals (503/429, the artifact server shedding load) a download may meet before they count
 * as failed attempts. A wave of thousands against a server that serves 64 at a time is refused many
 * times over; that is flow control, and the bounded attempts are kept for real failures (404, cut
 * connections). Still bounded, so a server that is never free does not keep devices asking forever.
 */
export const MAX_BUSY_RETRIES = 40;

/**
 * Trials retried after an interruption: the new slot came up and the agent ran its trial there, then
 * the device lost power or reset before the trial decided, and the one-shot trial fell back. Like
 * RAUC's boot attempts (BOOT_x_LEFT) or U-Boot's bootlimit above 1, one more attempt tells a power
 * cut from an image that takes the device down: a second interrupted trial is a trial boot failure.
 */
export const MAX_TRIAL_RETRIES = 1;

export const none = (state: AgentState): StepResult => ({ state, effects: [] });
export const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): UpdateEffect =>
  fields ? { type: 'log', level, msg, fields } : { type: 'log', level, msg };

/** Backoff before download attempt `attempts + 1`: base · 2^(attempts−1), capped. Jitter is the shell's. */
export function retryDelay(attempts: number, cfg: MachineConfig): number {
  return Math.min(cfg.retryMaxMs, cfg.retryBaseMs * 2 ** Math.max(0, attempts - 1));
}

/** Replaces the job, bumps seq and emits the status report for the job's (new) reported state. */
export function transition(
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
    ...definedProps({ reason: next.reason, detail: next.detail }),
    ...(progress ? { progress } : {}),
  };
  return { state: s, effects: [report] };
}

export function finish(state: AgentState, job: Job, result: UpdateState, now: number, reason?: UpdateReason, detail?: string): StepResult {
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
export function rolledBack(state: AgentState, job: Job, now: number, reason: UpdateReason, detail?: string): StepResult {
  const swapped: Job = { ...job, fromVersion: job.toVersion, toVersion: job.fromVersion };
  return finish(state, swapped, 'rolled-back', now, reason, detail);
}

export function ownsEvent(state: AgentState, deploymentId: string, ...stages: Job['stage'][]): Job | null {
  const job = state.job;
  if (!job || job.deploymentId !== deploymentId || !stages.includes(job.stage)) return null;
  return job;
}

export function toRebooting(state: AgentState, job: Job, now: number, slotVersions = state.slotVersions): StepResult {
  const r = transition(state, { ...job, stage: 'rebooting', bootId: state.lastBootId ?? '' }, now, { slotVersions });
  r.effects.push({ type: 'arm-trial' }, { type: 'reboot' });
  return r;
}

export function toReverting(state: AgentState, job: Job, now: number, reason: UpdateReason, detail?: string): StepResult {
  const next: Job = { ...job, stage: 'reverting', reason, bootId: state.lastBootId ?? '' };
  if (detail !== undefined) next.detail = detail.slice(0, 512);
  const r = transition(state, next, now);
  r.effects.unshift({ type: 'stop-trial' });
  r.effects.push({ type: 'mark-bad' }, { type: 'reboot' });
  return r;
}

export function onCommitted(state: AgentState, job: Job, now: number): StepResult {
  if (job.kind === 'rollback') return finish(state, job, 'rolled-back', now, 'rollback-command', job.detail);
  const securityFloor = Math.max(state.securityFloor, job.securityVersion ?? 0);
  const r = finish({ ...state, securityFloor }, job, 'committed', now);
  r.effects.push({ type: 'discard-download', deploymentId: job.deploymentId });
  return r;
}

export function startTrial(state: AgentState, job: Job, now: number, cfg: MachineConfig): StepResult {
  const trialStartedAt = job.trialStartedAt ?? now;
  const next: Job = { ...job, stage: 'trial', trialStartedAt };
  const r = job.stage === 'trial' ? { state: { ...state, job: next }, effects: [] as UpdateEffect[] } : transition(state, next, now);
  r.effects.push({ type: 'start-trial', deploymentId: job.deploymentId, deadlineAt: trialStartedAt + cfg.trialWindowMs });
  return r;
}

/** The report of the job's current state again, with its seq unchanged (the coordinator dedups by seq). */
export function reReport(state: AgentState, job: Job): UpdateEffect {
  return {
    type: 'report',
    deploymentId: job.deploymentId,
    state: reportedState(job),
    fromVersion: job.fromVersion,
    toVersion: job.toVersion,
    seq: state.seq,
    ...definedProps({ reason: job.reason, detail: job.detail }),
  };
}

export function trialBootFailed(state: AgentState, job: Job, now: number): StepResult {
  const retried = job.trialRetries ? ` (trial attempts: ${job.trialRetries + 1})` : '';
  const detail = `the bootloader fell back to slot ${job.fromSlot}: slot ${job.toSlot} did not come up and commit${retried}`;
  if (job.kind === 'rollback') return finish(state, job, 'failed', now, 'trial-boot-failed', detail);
  return rolledBack(state, job, now, 'trial-boot-failed', detail);
}

/**
 * The trial was interrupted after the agent came up on the new slot (it had recorded `trial` or
 * `committing`) and the device booted the old slot again without a verdict. The agent cannot tell a
 * power cut from a crash or a hang, so it arms the trial once more (reported as `rebooting` with
 * reason `trial-interrupted`); only when the retries are spent is the fall-back a trial boot failure.
 * A trial that never reached the agent (a boot loop, a brick) is not retried. Null: not retried.
 */
export function retryInterruptedTrial(state: AgentState, job: Job, bootId: string, now: number): StepResult | null {
  if (job.stage !== 'trial' && job.stage !== 'committing') return null;
  const retries = job.trialRetries ?? 0;
  if (retries >= MAX_TRIAL_RETRIES || job.revertRequested) return null;
  const next: Job = {
    ...job,
    stage: 'rebooting',
    bootId,
    rebootRetries: 0,
    trialRetries: retries + 1,
    // A rollback job keeps its rollback-command reason: its reports must still say who ordered it.
    ...(job.kind === 'install' ? { reason: 'trial-interrupted' as const } : {}),
    detail: `the trial of slot ${job.toSlot} was interrupted before it decided (power loss or reset); the bootloader fell back to slot ${job.fromSlot}; trying the trial again`,
  };
  // The retried trial gets a full window of its own.
  delete next.trialStartedAt;
  const r = transition(state, next, now);
  r.effects.push(
    log('warn', 'trial interrupted before it decided; retrying it', { deploymentId: job.deploymentId, trialRetries: retries + 1 }),
    { type: 'arm-trial' },
    { type: 'reboot' },
  );
  return r;
}
