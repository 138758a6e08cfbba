/**
 * The `boot` event: after any restart (agent crash, power loss, reboot) the recorded stage is resumed
 * against what the bootloader says about this boot. Pure.
 */
import type { AgentState, Job } from './agent-state.js';
import type { BootInfo, MachineConfig, StepResult } from './update-types.js';
import {
  MAX_REBOOT_RETRIES,
  finish,
  log,
  none,
  onCommitted,
  reReport,
  retryInterruptedTrial,
  rolledBack,
  startTrial,
  toReverting,
  trialBootFailed,
} from './update-transitions.js';

/**
 * Resumes the recorded stage against what the bootloader says about this boot. A report lost to the
 * crash (state saved, message not yet sent) is sent again: status delivery is at least once.
 */
export function onBoot(prev: AgentState, boot: BootInfo, now: number, cfg: MachineConfig): StepResult {
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
      return retryInterruptedTrial(state, job, boot.bootId, now) ?? trialBootFailed(state, job, now);
    case 'committing':
      if (boot.booted === job.toSlot && boot.trial) return { state, effects: [{ type: 'mark-good', deploymentId: job.deploymentId }] };
      if (boot.booted === job.toSlot) return onCommitted(state, job, now);
      // Health passed and mark-good was in flight when the power went: retried like any interrupted trial.
      return retryInterruptedTrial(state, job, boot.bootId, now) ?? trialBootFailed(state, job, now);
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
