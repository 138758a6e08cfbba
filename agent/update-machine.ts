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
 *   trial/committing interrupted (power cut, reset; the bootloader fell back) → rebooting, once
 */
import type { AgentState } from './agent-state.js';
import type { MachineConfig, StepResult, UpdateEvent } from './update-types.js';
import {
  MAX_BUSY_RETRIES,
  finish,
  none,
  onCommitted,
  ownsEvent,
  retryDelay,
  toRebooting,
  toReverting,
  transition,
  log,
} from './update-transitions.js';
import { onBoot } from './update-resume.js';
import { onAbort, onCommand, onRollout } from './update-requests.js';

export type { MachineConfig, StepResult, UpdateEffect, UpdateEvent } from './update-types.js';
export { MAX_BUSY_RETRIES, MAX_REBOOT_RETRIES, MAX_TRIAL_RETRIES } from './update-transitions.js';

/**
 * One decision of the update machine. Pure: the caller persists `state` before carrying out
 * `effects` in order (a failed effect stops the rest of its batch).
 */
export function step(state: AgentState, event: UpdateEvent, now: number, cfg: MachineConfig): StepResult {
  switch (event.type) {
    case 'boot':
      return onBoot(state, event.boot, now, cfg);
    case 'rollout':
      return onRollout(state, event, now);
    case 'rollout-cleared':
      return onAbort(state, now, event.deploymentId);
    case 'download-progress': {
      const job = ownsEvent(state, event.deploymentId, 'downloading');
      if (!job?.artifact) return none(state);
      const total = job.artifact.size;
      const tenths = Math.min(10, Math.floor((event.bytes * 10) / total));
      // Reported once per tenth, not sooner than progressIntervalMs after the job's last report or
      // change, and never at 100 % (the `verifying` report follows). Anything else changes nothing:
      // no state write and no status for bytes the file on disk already records.
      if (tenths <= job.reportedTenths || tenths >= 10 || now - job.updatedAt < cfg.progressIntervalMs) return none(state);
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
      const busyRetries = (job.busyRetries ?? 0) + 1;
      if (event.busy && event.retryable && busyRetries <= MAX_BUSY_RETRIES) {
        // Flow control, not a failure: come back when the server says (or after the backoff, if longer).
        const at = now + Math.max(event.retryAfterMs ?? 0, retryDelay(busyRetries, cfg));
        return {
          state: { ...state, job: { ...job, busyRetries, retryAt: at, updatedAt: now } },
          effects: [
            log('info', 'artifact server busy; retrying later without spending a download attempt', { busyRetries, detail: event.detail, retryAt: at }),
            { type: 'schedule-retry', deploymentId: job.deploymentId, at },
          ],
        };
      }
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
      const slotDeployments = { ...state.slotDeployments };
      delete slotDeployments[job.toSlot];
      const slotSecurity = { ...state.slotSecurity };
      delete slotSecurity[job.toSlot];
      const r = transition({ ...state, slotDeployments, slotSecurity }, { ...job, stage: 'installing' }, now, { slotVersions });
      r.effects.push({ type: 'write-slot', deploymentId: job.deploymentId, artifact: job.artifact });
      return r;
    }
    case 'slot-written': {
      const job = ownsEvent(state, event.deploymentId, 'installing');
      if (!job) return none(state);
      const slotVersions = { ...state.slotVersions, [job.toSlot]: job.toVersion };
      const slotDeployments = { ...state.slotDeployments, [job.toSlot]: job.deploymentId };
      const slotSecurity = { ...state.slotSecurity, [job.toSlot]: job.securityVersion ?? 0 };
      return toRebooting({ ...state, slotDeployments, slotSecurity }, job, now, slotVersions);
    }
    case 'slot-failed': {
      const job = ownsEvent(state, event.deploymentId, 'installing', 'rebooting', 'committing');
      if (!job) return none(state);
      // mark-good failed: never leave a trial uncommitted and unattended; go back to the old slot.
      if (job.stage === 'committing') return toReverting(state, job, now, event.reason, event.detail);
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
