/**
 * Per-device progress inside a deployment: how a device counts for its wave, and copy-on-write access
 * to the bucket-sharded device table with incremental wave counts. Pure.
 */
import { classifyUpdate } from '../gate/hard-gates.js';
import type { UpdateState } from '@fleet/protocol/update-state';
import type { DeploymentCore, DeploymentState, DeviceProgress, WaveCounts } from './types.js';

export type DeviceCategory = 'offline' | 'waiting' | 'inProgress' | 'committed' | 'failed' | 'timedOut' | 'ineligible';

/** How a device counts for its wave right now. */
export function categoryOf(d: DeviceProgress): DeviceCategory {
  const outcome = classifyUpdate(d.state === 'pending' ? undefined : d.state, d.reason);
  switch (outcome) {
    case 'succeeded':
      return 'committed';
    case 'trial-failure':
    case 'install-failure':
      return 'failed';
    case 'ineligible':
      return 'ineligible';
    case 'in-progress':
      return d.timedOut ? 'timedOut' : 'inProgress';
    case 'no-report':
      if (d.timedOut) return 'timedOut';
      return d.online ? 'waiting' : 'offline';
  }
}

export function isTrialFailure(d: DeviceProgress): boolean {
  return classifyUpdate(d.state === 'pending' ? undefined : d.state, d.reason) === 'trial-failure';
}

/** Reported at least one status (or a hello naming this deployment). */
export function isReporting(d: DeviceProgress): boolean {
  return d.state !== 'pending' && d.state !== 'idle';
}

/** Device states that mean the new image may be on the device (or about to be): a rollback is owed. */
const EXPOSED_STATES: readonly UpdateState[] = ['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'committed', 'rolling-back'];

export function needsRollback(d: DeviceProgress): boolean {
  return d.state !== 'pending' && EXPOSED_STATES.includes(d.state);
}

export function emptyCounts(): WaveCounts {
  return { tracked: 0, offline: 0, waiting: 0, inProgress: 0, committed: 0, failed: 0, trialFailures: 0, timedOut: 0, ineligible: 0, reporting: 0 };
}

function adjust(c: WaveCounts, d: DeviceProgress, sign: 1 | -1): void {
  c.tracked += sign;
  c[categoryOf(d)] += sign;
  if (isTrialFailure(d)) c.trialFailures += sign;
  if (isReporting(d)) c.reporting += sign;
}

/**
 * Copies everything the engine mutates; the spec is immutable once created and is shared (it holds
 * the manifest, the largest part of the core, so a deep copy per device message would dominate).
 */
export function cloneCore(core: DeploymentCore): DeploymentCore {
  const out: DeploymentCore = {
    ...core,
    waves: core.waves.map((w) => ({ ...w, counts: { ...w.counts } })),
    waitingFor: [...core.waitingFor],
    approvals: [...core.approvals],
  };
  if (core.pause) out.pause = { ...core.pause };
  if (core.rollback) out.rollback = { ...core.rollback };
  return out;
}

/**
 * A mutable working copy for one step: the core is cloned, device shards are copied on first write.
 * The input state is never modified.
 */
export class Draft {
  readonly core: DeploymentCore;
  private readonly shards: Record<number, Record<string, DeviceProgress>>;
  private readonly copied = new Set<number>();
  readonly changed = new Map<string, DeviceProgress>();

  constructor(state: DeploymentState) {
    this.core = cloneCore(state.core);
    this.shards = { ...state.devices };
  }

  get(deviceId: string, bucket: number): DeviceProgress | undefined {
    return this.shards[bucket]?.[deviceId];
  }

  /** Stores a device's new progress and moves its wave counts from `prev` to `next`. */
  put(next: DeviceProgress): void {
    const prev = this.get(next.deviceId, next.bucket);
    const wave = this.core.waves[next.wave];
    if (wave) {
      if (prev) adjust(wave.counts, prev, -1);
      adjust(wave.counts, next, 1);
    }
    if (!this.copied.has(next.bucket)) {
      this.shards[next.bucket] = { ...this.shards[next.bucket] };
      this.copied.add(next.bucket);
    }
    this.shards[next.bucket]![next.deviceId] = next;
    this.changed.set(next.deviceId, next);
  }

  /** Every device (optionally of one wave), in bucket order. */
  *devices(wave?: number): Generator<DeviceProgress> {
    for (const key of Object.keys(this.shards)) {
      const shard = this.shards[Number(key)];
      if (!shard) continue;
      for (const d of Object.values(shard)) if (wave === undefined || d.wave === wave) yield d;
    }
  }

  toState(): DeploymentState {
    return { core: this.core, devices: this.shards };
  }
}

/** Builds the sharded table from a flat list (repository load). */
export function shardDevices(devices: Iterable<DeviceProgress>): Record<number, Record<string, DeviceProgress>> {
  const out: Record<number, Record<string, DeviceProgress>> = {};
  for (const d of devices) (out[d.bucket] ??= {})[d.deviceId] = d;
  return out;
}

/** Every device of a state, flat. */
export function allDevices(state: DeploymentState): DeviceProgress[] {
  const out: DeviceProgress[] = [];
  for (const shard of Object.values(state.devices)) out.push(...Object.values(shard));
  return out;
}

/** Recomputes wave counts from scratch (repository load; a consistency check in tests). */
export function recount(core: DeploymentCore, devices: Iterable<DeviceProgress>): WaveCounts[] {
  const counts = core.waves.map(() => emptyCounts());
  for (const d of devices) {
    const c = counts[d.wave];
    if (c) adjust(c, d, 1);
  }
  return counts;
}
