/**
 * What arrives from outside the device's own progress: a rollout (verified by the shell), the wave
 * being cleared (abort), and signed commands (rollback, reboot, report-now). Pure.
 */
import type { Command } from '@fleet/protocol/signed';
import { otherSlot } from '@fleet/protocol/update-state';
import { freshnessProblem } from '@fleet/firmware/manifest';
import { currentVersion, isBusy, isPreReboot, type AgentState, type Job } from './agent-state.js';
import type { StepResult, UpdateEvent } from './update-types.js';
import { finish, log, none, rolledBack, toRebooting, toReverting, transition } from './update-transitions.js';

export function onRollout(prev: AgentState, ev: Extract<UpdateEvent, { type: 'rollout' }>, now: number): StepResult {
  let state = prev;
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
  // The shell verified freshness against this same state; checked again so the rule holds in the core.
  const stale = freshnessProblem(m.metadataVersion, ev.deploymentId, { metadataVersion: state.manifestVersion, deploymentId: state.manifestDeployment });
  if (stale !== null) {
    const rejected: Job = { ...base, kind: 'install', stage: 'done', toVersion: m.firmwareVersion };
    return finish(state, rejected, 'rejected', now, 'stale-manifest', stale);
  }
  // Accepted: from now on nothing older (nor this version under another deployment) is taken.
  state = { ...state, manifestVersion: m.metadataVersion ?? state.manifestVersion, manifestDeployment: ev.deploymentId };
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

/**
 * The coordinator stopped a wave: an empty retained payload (any deployment) or a retained
 * rollout-cancel naming `deploymentId` (only that deployment's job). A job not yet in its trial is
 * abandoned and never booted.
 */
export function onAbort(state: AgentState, now: number, deploymentId?: string): StepResult {
  const job = state.job;
  if (!job || job.kind !== 'install' || job.stage === 'done') return none(state);
  if (deploymentId !== undefined && job.deploymentId !== deploymentId) return none(state);
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

export function onCommand(prev: AgentState, command: Command, now: number): StepResult {
  // Recorded before the effect (and kept in the durable record): a crash after a reboot command, or a
  // lost state file, must not let it run again.
  if (command.seq === undefined || command.seq <= prev.commandSeq) {
    return { state: prev, effects: [log('warn', 'command refused: not above the newest executed (replay)', { commandId: command.commandId, seq: command.seq ?? null, commandSeq: prev.commandSeq })] };
  }
  const state: AgentState = { ...prev, commandSeq: command.seq };
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
  // Which deployment wrote the running slot: a rollback undoes exactly that, never another release.
  const runningFrom = state.slotDeployments[state.booted];
  if (command.deploymentId !== undefined && runningFrom !== command.deploymentId) {
    if (job?.deploymentId === command.deploymentId) {
      // Nothing of it runs here (failed, rejected or already rolled back): re-report its outcome.
      const r = transition(state, { ...job, updatedAt: now }, now);
      r.effects.unshift(log('info', 'rollback command: deployment is not running here; re-reporting its outcome', { commandId: command.commandId }));
      return r;
    }
    return { state, effects: [log('info', 'rollback command ignored: that deployment is not what this device runs', { commandId: command.commandId, deploymentId: command.deploymentId })] };
  }
  const deploymentId = command.deploymentId ?? runningFrom;
  if (previous === undefined || current === undefined || deploymentId === undefined) {
    return { state, effects: [log('warn', 'rollback command: nothing to roll back to (no known firmware in the other slot)', { commandId: command.commandId })] };
  }
  const floorProblem = belowFloor(state, other);
  if (floorProblem !== null) {
    // Never below the floor: the device stays on the image it committed and says so, so the
    // coordinator stops waiting for a rollback that cannot happen (reported as committed, with reason).
    const refused: Job = {
      kind: 'rollback',
      deploymentId,
      stage: 'done',
      result: 'committed',
      fromVersion: current,
      toVersion: current,
      fromSlot: state.booted,
      toSlot: state.booted,
      attempts: 0,
      bytes: 0,
      reportedTenths: 0,
      rebootRetries: 0,
      reason: 'below-security-floor',
      detail: `${detail} refused: ${floorProblem}`.slice(0, 512),
      commandId: command.commandId,
      updatedAt: now,
    };
    const r = transition(state, refused, now);
    r.effects.unshift(log('warn', 'rollback command refused: the other slot is below the security floor', { commandId: command.commandId, deploymentId, securityFloor: state.securityFloor }));
    return r;
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

/**
 * Why booting `slot` would cross the security floor (null when it would not). An image of unknown
 * securityVersion (the factory image, or one whose record was lost) counts as 0: above a floor of 0
 * nothing is assumed. Pure.
 */
export function belowFloor(state: AgentState, slot: Job['toSlot']): string | null {
  if (state.securityFloor === 0) return null;
  const security = state.slotSecurity[slot];
  if (security !== undefined && security >= state.securityFloor) return null;
  const what = security === undefined ? 'an unknown securityVersion' : `securityVersion ${security}`;
  return `slot ${slot} (${state.slotVersions[slot] ?? 'unknown version'}) has ${what}, below this device's floor ${state.securityFloor}; no path may boot below the floor`;
}
