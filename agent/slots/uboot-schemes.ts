/**
 * The two common U-Boot A/B schemes as pure functions from the environment (and the booted slot) to a
 * BootState, and from a step (arm, commit, mark bad) to the ONE batch of variables that step writes.
 * Pure; table-tested in test/slots/uboot-schemes.test.ts.
 *
 * - `bootcount` (Mender, U-Boot CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV): a partition variable
 *   names the slot to boot; while `upgrade_available=1` U-Boot raises `bootcount` each boot and runs
 *   `altbootcmd` (switch partition, upgrade_available=0, saveenv) once bootcount > bootlimit.
 * - `boot-order` (RAUC's U-Boot script): `BOOT_ORDER="A B"`, `BOOT_<slot>_LEFT`; each boot takes the first
 *   slot with attempts left and decrements them. RAUC has no notion of an uncommitted trial, so we add
 *   one variable (`fleet_trial`, the slot on trial) that only Linux reads.
 */
import type { SlotName } from '@fleet/protocol/update-state';
import { otherSlot } from '@fleet/protocol/update-state';
import type { BootState } from './slot-backend.js';
import { SlotError } from './slot-backend.js';
import type { UbootVars } from './uboot-env.js';

const SLOTS: readonly SlotName[] = ['A', 'B'];

export interface BootcountSchemeOptions {
  /** Value of the partition variable per slot, e.g. { A: '2', B: '3' }. */
  values: Record<SlotName, string>;
  /** Default `mender_boot_part`. */
  partitionVariable: string;
  /** Also written as hex (Mender's `mender_boot_part_hex`); null to skip. */
  partitionHexVariable: string | null;
  /** Boots a trial may take before U-Boot switches back. Default 1 (Mender). */
  bootlimit: number;
  /**
   * The booted slot comes from the kernel command line. Without it the environment must keep naming the
   * booted slot, so marking a running trial bad spends its boots (bootcount = bootlimit; U-Boot's
   * altbootcmd switches back on the next boot) instead of rewriting the partition variable.
   */
  bootedFromCmdline: boolean;
}

export interface BootOrderSchemeOptions {
  /** Name of each slot in BOOT_ORDER, e.g. { A: 'A', B: 'B' }. */
  bootnames: Record<SlotName, string>;
  /** Attempts a committed slot gets (RAUC: 3). */
  attempts: number;
  /** Attempts a trial gets; 1 makes it one-shot. */
  trialAttempts: number;
  /** Variable naming the slot on trial. Default `fleet_trial`. */
  trialVariable: string;
}

/** A U-Boot scheme: reads a BootState and produces each step's batch. */
export interface UbootScheme {
  /** `booted` comes from the kernel command line; undefined means derive it from the environment. */
  bootState(env: UbootVars, booted: SlotName | undefined): BootState;
  /** A trial of the inactive slot is armed but not yet booted. */
  armed(env: UbootVars, state: BootState): boolean;
  /** Arms a trial of `target`, keeping `fallback` as the committed slot. */
  arm(target: SlotName, fallback: SlotName): UbootVars;
  /** Commits the booted slot (or, outside a trial, refreshes its attempts); {} when nothing to do. */
  commit(env: UbootVars, state: BootState): UbootVars;
  /** Makes the next boot the primary: rejects a running trial or disarms a pending one. */
  revert(env: UbootVars, state: BootState): UbootVars;
}

function slotFor(map: Record<SlotName, string>, value: string | undefined, what: string): SlotName {
  const slot = SLOTS.find((s) => map[s] === value);
  if (!slot) {
    throw new SlotError(
      'bootloader-error',
      `${what} is ${JSON.stringify(value ?? '')}, which is neither slot (A=${map.A}, B=${map.B}); check the agent config against the U-Boot environment`,
    );
  }
  return slot;
}

function int(value: string | undefined): number {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) ? n : 0;
}

export function bootcountScheme(o: BootcountSchemeOptions): UbootScheme {
  const part = (slot: SlotName): UbootVars => {
    const vars: UbootVars = { [o.partitionVariable]: o.values[slot] };
    if (o.partitionHexVariable !== null) {
      const n = Number.parseInt(o.values[slot], 10);
      vars[o.partitionHexVariable] = Number.isFinite(n) ? n.toString(16) : o.values[slot];
    }
    return vars;
  };
  return {
    bootState(env, bootedFromCmdline) {
      const target = slotFor(o.values, env[o.partitionVariable], o.partitionVariable);
      const upgrade = env.upgrade_available === '1';
      const bootCount = int(env.bootcount);
      const primary = upgrade ? otherSlot(target) : target;
      // Without a kernel command line marker: armed but not yet booted leaves bootcount at 0, and
      // altbootcmd rewrites the partition variable, so the environment names the booted slot.
      const booted = bootedFromCmdline ?? (upgrade && bootCount === 0 ? otherSlot(target) : target);
      return { booted, primary, trial: booted !== primary, bootCount };
    },
    armed(env, state) {
      return env.upgrade_available === '1' && !state.trial;
    },
    arm(target) {
      return { ...part(target), upgrade_available: '1', bootcount: '0', bootlimit: String(o.bootlimit) };
    },
    commit(env, state) {
      if (!state.trial) return {};
      return { ...part(state.booted), upgrade_available: '0', bootcount: '0' };
    },
    revert(env, state) {
      if (!state.trial && env.upgrade_available !== '1') return {};
      if (state.trial && !o.bootedFromCmdline) return { upgrade_available: '1', bootcount: String(Math.max(o.bootlimit, int(env.bootcount))) };
      return { ...part(state.primary), upgrade_available: '0', bootcount: '0' };
    },
  };
}

export function bootOrderScheme(o: BootOrderSchemeOptions): UbootScheme {
  const left = (slot: SlotName): string => `BOOT_${o.bootnames[slot]}_LEFT`;
  const order = (first: SlotName): string => `${o.bootnames[first]} ${o.bootnames[otherSlot(first)]}`;
  return {
    bootState(env, booted) {
      if (!booted) {
        throw new SlotError('bootloader-error', 'the boot-order scheme needs the booted slot from the kernel command line (rauc.slot=…); set slots.*.cmdline');
      }
      const names = (env.BOOT_ORDER ?? '').split(/\s+/).filter(Boolean);
      const ordered = names.flatMap((n) => SLOTS.filter((s) => o.bootnames[s] === n));
      const trialName = env[o.trialVariable] ?? '';
      let primary: SlotName;
      if (trialName !== '') {
        primary = otherSlot(slotFor(o.bootnames, trialName, o.trialVariable));
      } else {
        // What U-Boot boots by default: the first slot in BOOT_ORDER that still has attempts (the booted
        // one counts even on its last attempt: the next markGood gives them back).
        primary = ordered.find((s) => s === booted || int(env[left(s)]) > 0) ?? booted;
      }
      const state: BootState = { booted, primary, trial: booted !== primary };
      if (trialName !== '' && booted !== primary) state.bootCount = o.trialAttempts - int(env[left(booted)]);
      return state;
    },
    armed(env, state) {
      return (env[o.trialVariable] ?? '') !== '' && !state.trial;
    },
    arm(target, fallback) {
      return {
        BOOT_ORDER: order(target),
        [left(target)]: String(o.trialAttempts),
        [left(fallback)]: String(o.attempts),
        [o.trialVariable]: o.bootnames[target],
      };
    },
    commit(env, state) {
      if (state.trial) {
        return { BOOT_ORDER: order(state.booted), [left(state.booted)]: String(o.attempts), [o.trialVariable]: '' };
      }
      // RAUC's script spends an attempt on EVERY boot, so a committed slot gets its attempts back after
      // each healthy boot (rauc mark-good does the same); otherwise three boots would switch slots.
      if (state.booted === state.primary && int(env[left(state.booted)]) < o.attempts) {
        return { [left(state.booted)]: String(o.attempts) };
      }
      return {};
    },
    revert(env, state) {
      if (!state.trial && (env[o.trialVariable] ?? '') === '') return {};
      return { BOOT_ORDER: order(state.primary), [left(otherSlot(state.primary))]: '0', [o.trialVariable]: '' };
    },
  };
}
