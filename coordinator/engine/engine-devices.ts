/**
 * How device traffic moves the pure engine: status transitions, hellos (reconnects, late arrivals,
 * catch-up after a coordinator restart), presence, and wave membership from the directory. Pure.
 *
 * A report counts only for an update the device was offered: its bucket's wave of this deployment was
 * published (to a device of a targeted model), or it was sent a rollback command for it. Anything
 * else — a status from a bucket whose wave has not started, from a model the deployment does not
 * target, a hello naming an update it never got — becomes an `unoffered-status` anomaly on the device
 * and changes nothing: one misbehaving device cannot abort a rollout it is not part of. Devices offline
 * when their wave started still count (their bucket was published; the manifest waits retained), and
 * so do devices whose wave started before a coordinator restart (the wave's start is in the state).
 */
import type { HelloMessage, StatusMessage } from '@fleet/protocol/messages';
import { bucketOf } from '@fleet/protocol/bucket';
import { isTerminalUpdateState, type UpdateState } from '@fleet/protocol/update-state';
import { needsRollback } from './device-progress.js';
import { classifyUpdate } from '../gate/hard-gates.js';
import { audit, unofferedStatus, type Ctx } from './engine-context.js';
import { checkEarlyHardLimits, checkRollbackDone, checkWaveComplete, confirmRollback, isRollbackRefusal, refuseRollback, sendRollback } from './engine-waves.js';
import { matchesTarget, waveOfBucketIn, waveOfDevice } from './wave-plan.js';
import type { DeviceProgress, WaveMember } from './types.js';

/** Phases in which new devices are still taken on (the wave's manifest is out there). */
const TRACKING_PHASES = ['pending', 'rolling', 'soaking', 'gating', 'completed'] as const;

function newDevice(ctx: Ctx, deviceId: string, bucket: number, wave: number, late: boolean): DeviceProgress {
  return { deviceId, bucket, wave, state: 'pending', online: true, late, timedOut: false, firstSeenAt: ctx.now, lastSeenAt: ctx.now };
}

function isLate(ctx: Ctx, wave: number): boolean {
  return ctx.d.core.waves[wave]?.membersKnown ?? false;
}

/** After any device change: rollback bookkeeping, early hard limits, wave completion. */
function afterDeviceChange(ctx: Ctx, dev: DeviceProgress): void {
  const core = ctx.d.core;
  if (core.phase === 'rolling-back' || core.phase === 'rolled-back') {
    if (dev.rollback) {
      if (dev.rollback.status !== 'confirmed' && isBackOnOldVersion(ctx, dev)) confirmRollback(ctx, dev);
      else if (isRollbackRefusal(dev.state, dev.reason)) refuseRollback(ctx, dev);
    } else if (needsRollback(dev) && core.rollback) {
      // Exposed after the rollback began (it held the manifest before the topics were cleared).
      sendRollback(ctx, dev, 'engine');
    }
    checkRollbackDone(ctx);
    return;
  }
  if (core.phase === 'completed' || core.phase === 'aborted') {
    // Nothing to stop any more, but an operator must hear of a failure on a late device.
    const outcome = classifyUpdate(dev.state === 'pending' ? undefined : dev.state, dev.reason);
    if (outcome === 'trial-failure' || outcome === 'install-failure') {
      audit(ctx, 'engine', 'device.failed-late', { state: dev.state, reason: dev.reason ?? null, phase: core.phase }, { deviceId: dev.deviceId, wave: dev.wave });
    }
    return;
  }
  checkEarlyHardLimits(ctx);
  checkWaveComplete(ctx);
}

/** A rolled-back, failed or refused update leaves (or puts) the device on its old version. */
function isBackOnOldVersion(ctx: Ctx, dev: DeviceProgress): boolean {
  if (dev.state === 'rolled-back' || dev.state === 'failed' || dev.state === 'rejected' || dev.state === 'idle') return true;
  return dev.runningVersion !== undefined && dev.runningVersion !== ctx.d.core.spec.firmwareVersion && dev.state !== 'pending' && isTerminalUpdateState(dev.state);
}

/**
 * The version a device runs after reporting `state`. A `rolled-back` report names the version now
 * running in `toVersion` and the abandoned one in `fromVersion` (see StatusMessageSchema), so it counts
 * like a commit of `toVersion`.
 */
function runningAfter(state: UpdateState, s: { fromVersion: string; toVersion: string }, prev: string | undefined): string | undefined {
  switch (state) {
    case 'trial':
    case 'committed':
    case 'already-installed':
    case 'rolled-back':
      return s.toVersion;
    case 'failed':
    case 'rejected':
    case 'downloading':
    case 'verifying':
    case 'installing':
      return s.fromVersion;
    case 'idle':
    case 'rebooting':
    case 'rolling-back':
      return prev;
  }
}

/**
 * Why `deviceId` was never offered this deployment, or undefined when it was: tracked already (a
 * member, or a report accepted earlier), or its bucket's wave has started and its model (as far as it
 * is known) is targeted.
 */
function notOffered(ctx: Ctx, wave: number, prev: DeviceProgress | undefined, hardwareModel: string | undefined): string | undefined {
  if (prev) return undefined;
  const core = ctx.d.core;
  if (wave < 0) return 'its bucket is in no wave of the deployment';
  if (core.waves[wave]?.startedAt === undefined) return `its bucket's wave ${wave + 1} has not started`;
  if (hardwareModel !== undefined && !core.spec.target.hardwareModels.includes(hardwareModel)) {
    return `its hardware model ${hardwareModel} is not targeted (${core.spec.target.hardwareModels.join(', ')})`;
  }
  return undefined;
}

export function onStatus(ctx: Ctx, status: StatusMessage, hardwareModel?: string): void {
  const spec = ctx.d.core.spec;
  if (status.deploymentId !== spec.id) return;
  const { bucket, wave } = waveOfDevice(spec, status.deviceId);
  const prev = ctx.d.get(status.deviceId, bucket);
  const refused = notOffered(ctx, wave, prev, hardwareModel);
  if (refused !== undefined) {
    unofferedStatus(ctx, status.deviceId, `status ${status.state}${status.reason ? ` (${status.reason})` : ''} for ${spec.id} ignored: ${refused}`);
    return;
  }
  // Duplicates and reordering: an older sequence number is ignored unless the device's clock moved on
  // (its data directory was wiped and the sequence restarted).
  if (prev?.lastSeq !== undefined && status.seq <= prev.lastSeq && status.at <= (prev.lastStatusAt ?? 0)) return;
  const base = prev ?? newDevice(ctx, status.deviceId, bucket, wave, isLate(ctx, wave));
  const next: DeviceProgress = {
    ...base,
    state: status.state,
    // A rollback report swaps the versions: the one the device ran before the update is its toVersion.
    fromVersion: status.state === 'rolled-back' ? status.toVersion : status.fromVersion,
    online: true,
    lastSeq: status.seq,
    lastStatusAt: status.at,
    lastSeenAt: ctx.now,
  };
  const running = runningAfter(status.state, status, base.runningVersion);
  if (running !== undefined) next.runningVersion = running;
  if (status.reason !== undefined) next.reason = status.reason;
  else delete next.reason;
  if (status.detail !== undefined) next.detail = status.detail;
  else delete next.detail;
  ctx.d.put(next);
  afterDeviceChange(ctx, next);
}

export function onHello(ctx: Ctx, hello: HelloMessage): void {
  const core = ctx.d.core;
  const spec = core.spec;
  const { bucket, wave } = waveOfDevice(spec, hello.deviceId);
  const prev = ctx.d.get(hello.deviceId, bucket);
  const mine = hello.update?.deploymentId === spec.id ? hello.update : undefined;
  if (!prev) {
    const refused = notOffered(ctx, wave, prev, hello.hardwareModel);
    if (refused !== undefined) {
      if (mine) unofferedStatus(ctx, hello.deviceId, `hello naming update ${spec.id} (${mine.state}) ignored: ${refused}`);
      return;
    }
    const w = core.waves[wave]!;
    const tracking = (TRACKING_PHASES as readonly string[]).includes(core.phase);
    const exposedLate = mine !== undefined && (core.phase === 'rolling-back' || core.phase === 'rolled-back' || core.phase === 'aborted');
    if (!(mine !== undefined && (tracking || exposedLate)) && !(tracking && w.membersKnown && matchesTarget(spec, hello))) return;
  }
  const base = prev ?? newDevice(ctx, hello.deviceId, bucket, wave, isLate(ctx, wave));
  const next: DeviceProgress = {
    ...base,
    hardwareModel: hello.hardwareModel,
    runningVersion: hello.firmwareVersion,
    online: true,
    lastSeenAt: ctx.now,
  };
  // The hello names the update the device is on: a restarted coordinator catches up from it. A hello
  // from an agent that sends no reason must not turn an update in progress into a reasonless outcome
  // (a fallen-back trial would read as an ordered rollback): its status, which has the reason, follows.
  const reasonless = mine !== undefined && mine.reason === undefined && (mine.state === 'rolled-back' || mine.state === 'failed')
    && classifyUpdate(next.state === 'pending' ? undefined : next.state, next.reason) === 'in-progress';
  // A hello older than the last status applied (it reached this engine late: another replica stored the
  // statuses that followed it first) must not take a finished update back to the state it summarised.
  // One stamped in the same millisecond is no newer: a device clock can stand still between the hello
  // and the status that followed it, and only the status carries a sequence number.
  const stale = base.lastStatusAt !== undefined && hello.at <= base.lastStatusAt && (next.state === 'committed' || next.state === 'failed' || next.state === 'rolled-back');
  if (mine && !reasonless && !stale && (mine.state !== next.state || (mine.reason !== undefined && mine.reason !== next.reason))) {
    next.state = mine.state;
    if (mine.reason !== undefined) next.reason = mine.reason;
    else delete next.reason;
  }
  if (next.fromVersion === undefined && !mine) next.fromVersion = hello.firmwareVersion;
  ctx.d.put(next);
  const rb = next.rollback;
  if ((core.phase === 'rolling-back' || core.phase === 'rolled-back') && rb && rb.status !== 'confirmed' && rb.status !== 'refused') {
    if (mine && isRollbackRefusal(mine.state, mine.reason)) {
      // The device refused the rollback below its floor (its status may not have arrived): stop asking.
      refuseRollback(ctx, next);
      checkRollbackDone(ctx);
      return;
    }
    const onNew = hello.firmwareVersion === spec.firmwareVersion;
    const settled = !mine || isTerminalUpdateState(mine.state) || mine.state === 'idle';
    if (!onNew && settled) {
      confirmRollback(ctx, next);
      checkRollbackDone(ctx);
      return;
    }
    if (onNew && rb.attempts < spec.rollback.maxCommandAttempts) {
      // Reconnected still on the new image: the command may have been lost; send it again.
      sendRollback(ctx, next, 'engine');
      checkRollbackDone(ctx);
      return;
    }
  }
  afterDeviceChange(ctx, next);
}

export function onPresence(ctx: Ctx, deviceId: string, online: boolean): void {
  const bucket = bucketOf(deviceId);
  const prev = ctx.d.get(deviceId, bucket);
  if (!prev || prev.online === online) return;
  ctx.d.put({ ...prev, online, ...(online ? { lastSeenAt: ctx.now } : {}) });
  checkWaveComplete(ctx);
}

export function onMembers(ctx: Ctx, wave: number, members: readonly WaveMember[]): void {
  const core = ctx.d.core;
  const w = core.waves[wave];
  if (!w || w.startedAt === undefined || w.membersKnown) return;
  let added = 0;
  for (const m of members) {
    if (waveOfBucketIn(core.spec, m.bucket) !== wave || bucketOf(m.deviceId) !== m.bucket) continue;
    if (!core.spec.target.hardwareModels.includes(m.hardwareModel)) continue;
    if (ctx.d.get(m.deviceId, m.bucket)) continue;
    ctx.d.put({
      ...newDevice(ctx, m.deviceId, m.bucket, wave, false),
      hardwareModel: m.hardwareModel,
      fromVersion: m.firmwareVersion,
      runningVersion: m.firmwareVersion,
      online: m.online,
    });
    added++;
  }
  w.membersKnown = true;
  audit(ctx, 'engine', 'deployment.wave-members', { members: added }, { wave });
  checkWaveComplete(ctx);
}
