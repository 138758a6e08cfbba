/**
 * A pure model of one device around the update machine, for the crash-point tests: a bootloader with
 * a one-shot trial, two slots, a download, and an executor that turns effects into world changes and
 * follow-up events. The driver persists state before effects (as the Agent does) and can crash the
 * agent — or cut the power — after any number of executed effects.
 */
import { otherSlot, type SlotName } from '../../protocol/update-state.js';
import type { Manifest } from '../../protocol/signed.js';
import { initialAgentState, type AgentState } from '../../agent/agent-state.js';
import { step, type MachineConfig, type UpdateEffect, type UpdateEvent } from '../../agent/update-machine.js';

export const CFG: MachineConfig = { maxDownloadAttempts: 3, retryBaseMs: 1000, retryMaxMs: 8000, trialWindowMs: 60_000, progressIntervalMs: 5_000 };

export interface World {
  primary: SlotName;
  booted: SlotName;
  trial: SlotName | null;
  slots: Record<SlotName, string | null>;
  bootSeq: number;
  reports: Extract<UpdateEffect, { type: 'report' }>[];
  /** Health outcome of a version's trial. */
  healthy: (version: string) => boolean;
  /** Whether a version boots at all. */
  boots: (version: string) => boolean;
  /** Whether a version's trial resets the device once the agent has started it (a crash, a hang). */
  resetsInTrial: (version: string) => boolean;
  writes: number;
  /** Trials armed so far. */
  arms: number;
}

export function newWorld(opts: Partial<Pick<World, 'healthy' | 'boots' | 'resetsInTrial'>> = {}): World {
  return {
    primary: 'A',
    booted: 'A',
    trial: null,
    slots: { A: '1.0.0', B: '0.9.0' },
    bootSeq: 1,
    reports: [],
    healthy: opts.healthy ?? (() => true),
    boots: opts.boots ?? (() => true),
    resetsInTrial: opts.resetsInTrial ?? (() => false),
    writes: 0,
    arms: 0,
  };
}

export function bootEvent(w: World): UpdateEvent {
  return { type: 'boot', boot: { booted: w.booted, primary: w.primary, trial: w.booted !== w.primary, bootId: `b${w.bootSeq}` } };
}

/** The bootloader at power-on; loops while the chosen firmware does not boot (bounded). */
export function powerOn(w: World): void {
  for (let i = 0; i < 5; i++) {
    w.bootSeq++;
    if (w.trial && w.trial !== w.primary && w.slots[w.trial]) {
      w.booted = w.trial;
      w.trial = null; // one-shot
    } else {
      w.booted = w.primary;
      w.trial = null;
    }
    const v = w.slots[w.booted];
    if (v && w.boots(v)) return;
  }
  throw new Error('no bootable slot: the device is bricked');
}

export interface RunOptions {
  manifest: Manifest;
  /** Crash after this many executed effects (counting from 1); `power` also power-cycles. */
  crashAfter?: number;
  crashKind?: 'process' | 'power';
  /** Events injected right after the rollout is handled (e.g. an abort). */
  afterRollout?: UpdateEvent[];
  /** Events injected once the rollout has settled (e.g. a rollback command). */
  afterSettled?: UpdateEvent[];
  maxEvents?: number;
}

export interface RunResult {
  state: AgentState;
  world: World;
  crashed: boolean;
}

/** Runs a rollout to completion against the world. */
export function run(w: World, opts: RunOptions): RunResult {
  let persisted = step(initialAgentState('1.0.0', 'A'), bootEvent(w), 0, CFG).state;
  persisted = { ...persisted, slotVersions: { A: '1.0.0', B: '0.9.0' } };
  let now = 1_000;
  const queue: UpdateEvent[] = [
    {
      type: 'rollout',
      deploymentId: 'd1',
      wave: 0,
      verified: { ok: true, value: opts.manifest, keyIds: ['k'] },
    },
    ...(opts.afterRollout ?? []),
  ];
  let executed = 0;
  let crashed = false;
  const max = opts.maxEvents ?? 200;
  let later = opts.afterSettled ? [...opts.afterSettled] : [];
  for (let n = 0; (queue.length || later.length) && n < max; n++) {
    if (!queue.length) {
      queue.push(...later);
      later = [];
    }
    const ev = queue.shift()!;
    now += 10;
    const r = step(persisted, ev, now, CFG);
    persisted = r.state; // saved atomically before any effect
    for (const e of r.effects) {
      if (opts.crashAfter !== undefined && !crashed && executed === opts.crashAfter) {
        crashed = true;
        queue.length = 0;
        if (opts.crashKind === 'power') powerOn(w);
        queue.push(bootEvent(w));
        break;
      }
      executed++;
      const follow = execute(w, e, opts.manifest);
      if (follow === 'rebooted') {
        queue.length = 0;
        queue.push(bootEvent(w));
        break;
      }
      queue.push(...follow);
    }
  }
  if (queue.length) throw new Error('machine did not settle');
  return { state: persisted, world: w, crashed };
}

function execute(w: World, e: UpdateEffect, m: Manifest): UpdateEvent[] | 'rebooted' {
  switch (e.type) {
    case 'report':
      w.reports.push(e);
      return [];
    case 'download':
      return [{ type: 'download-finished', deploymentId: e.deploymentId }];
    case 'schedule-retry':
      return [{ type: 'retry-due', deploymentId: e.deploymentId }];
    case 'verify':
      return [{ type: 'verify-done', deploymentId: e.deploymentId, ok: true }];
    case 'write-slot': {
      const target = otherSlot(w.booted);
      if (w.trial === target) w.trial = null;
      w.slots[target] = m.firmwareVersion;
      w.writes++;
      return [{ type: 'slot-written', deploymentId: e.deploymentId }];
    }
    case 'arm-trial': {
      const target = otherSlot(w.booted);
      if (!w.slots[target]) throw new Error('armed an empty slot');
      w.trial = target;
      w.arms++;
      return [];
    }
    case 'reboot':
      powerOn(w);
      return 'rebooted';
    case 'start-trial': {
      const v = w.slots[w.booted]!;
      if (w.resetsInTrial(v)) {
        powerOn(w);
        return 'rebooted';
      }
      return w.healthy(v)
        ? [{ type: 'health-passed', deploymentId: e.deploymentId }]
        : [{ type: 'health-failed', deploymentId: e.deploymentId, reason: 'health-check-failed', detail: 'check failed' }];
    }
    case 'mark-good':
      if (w.booted !== w.primary) w.primary = w.booted;
      return [{ type: 'marked-good', deploymentId: e.deploymentId }];
    case 'mark-bad':
      w.trial = null;
      return [];
    case 'cancel-download':
    case 'discard-download':
    case 'stop-trial':
    case 'report-now':
    case 'log':
      return [];
  }
}
