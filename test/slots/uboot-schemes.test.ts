import { describe, expect, it } from 'vitest';
import type { UbootVars } from '../../agent/slots/uboot-env.js';
import { parsePrintenv, renderScript } from '../../agent/slots/uboot-env.js';
import { bootOrderScheme, bootcountScheme } from '../../agent/slots/uboot-schemes.js';
import type { SlotName } from '../../protocol/update-state.js';
import { SlotError } from '../../agent/slots/slot-backend.js';

const mender = (bootedFromCmdline = false) =>
  bootcountScheme({ values: { A: '2', B: '3' }, partitionVariable: 'mender_boot_part', partitionHexVariable: 'mender_boot_part_hex', bootlimit: 1, bootedFromCmdline });
const rauc = bootOrderScheme({ bootnames: { A: 'A', B: 'B' }, attempts: 3, trialAttempts: 1, trialVariable: 'fleet_trial' });

describe('bootcount scheme (Mender)', () => {
  const cases: { name: string; env: UbootVars; cmdline?: SlotName; expected: { booted: SlotName; primary: SlotName; trial: boolean } }[] = [
    { name: 'committed on A', env: { mender_boot_part: '2', upgrade_available: '0', bootcount: '0' }, expected: { booted: 'A', primary: 'A', trial: false } },
    { name: 'armed B, not yet booted', env: { mender_boot_part: '3', upgrade_available: '1', bootcount: '0' }, expected: { booted: 'A', primary: 'A', trial: false } },
    { name: 'trial of B after one boot', env: { mender_boot_part: '3', upgrade_available: '1', bootcount: '1' }, expected: { booted: 'B', primary: 'A', trial: true } },
    { name: 'altbootcmd switched back to A', env: { mender_boot_part: '2', upgrade_available: '0', bootcount: '2' }, expected: { booted: 'A', primary: 'A', trial: false } },
    { name: 'committed on B', env: { mender_boot_part: '3', upgrade_available: '0', bootcount: '0' }, expected: { booted: 'B', primary: 'B', trial: false } },
    { name: 'cmdline says B while env is reverted (marked bad, not rebooted)', env: { mender_boot_part: '2', upgrade_available: '0', bootcount: '0' }, cmdline: 'B', expected: { booted: 'B', primary: 'A', trial: true } },
  ];
  for (const c of cases) {
    it(`reads: ${c.name}`, () => {
      expect(mender(c.cmdline !== undefined).bootState(c.env, c.cmdline)).toMatchObject(c.expected);
    });
  }

  it('arms in one batch with partition, hex, upgrade_available, bootcount and bootlimit', () => {
    expect(mender().arm('B', 'A')).toEqual({ mender_boot_part: '3', mender_boot_part_hex: '3', upgrade_available: '1', bootcount: '0', bootlimit: '1' });
  });

  it('commits a trial and does nothing outside one', () => {
    const trial = { mender_boot_part: '3', upgrade_available: '1', bootcount: '1' };
    expect(mender().commit(trial, mender().bootState(trial, undefined))).toEqual({ mender_boot_part: '3', mender_boot_part_hex: '3', upgrade_available: '0', bootcount: '0' });
    const committed = { mender_boot_part: '2', upgrade_available: '0', bootcount: '0' };
    expect(mender().commit(committed, mender().bootState(committed, undefined))).toEqual({});
  });

  it('marks a running trial bad by spending its boots when the env names the booted slot, or by switching back when the cmdline does', () => {
    const trial = { mender_boot_part: '3', upgrade_available: '1', bootcount: '1' };
    expect(mender().revert(trial, mender().bootState(trial, undefined))).toEqual({ upgrade_available: '1', bootcount: '1' });
    expect(mender(true).revert(trial, mender(true).bootState(trial, 'B'))).toEqual({ mender_boot_part: '2', mender_boot_part_hex: '2', upgrade_available: '0', bootcount: '0' });
  });

  it('disarms a pending trial', () => {
    const armed = { mender_boot_part: '3', upgrade_available: '1', bootcount: '0' };
    const state = mender().bootState(armed, undefined);
    expect(mender().armed(armed, state)).toBe(true);
    expect(mender().revert(armed, state)).toEqual({ mender_boot_part: '2', mender_boot_part_hex: '2', upgrade_available: '0', bootcount: '0' });
  });

  it('rejects a partition value that is neither slot', () => {
    expect(() => mender().bootState({ mender_boot_part: '7' }, undefined)).toThrow(SlotError);
  });
});

describe('boot-order scheme (RAUC BOOT_ORDER)', () => {
  const cases: { name: string; env: UbootVars; booted: SlotName; expected: { primary: SlotName; trial: boolean } }[] = [
    { name: 'committed on A', env: { BOOT_ORDER: 'A B', BOOT_A_LEFT: '2', BOOT_B_LEFT: '3' }, booted: 'A', expected: { primary: 'A', trial: false } },
    { name: 'A on its last attempt is still primary', env: { BOOT_ORDER: 'A B', BOOT_A_LEFT: '0', BOOT_B_LEFT: '3' }, booted: 'A', expected: { primary: 'A', trial: false } },
    { name: 'armed B, not yet booted', env: { BOOT_ORDER: 'B A', BOOT_A_LEFT: '3', BOOT_B_LEFT: '1', fleet_trial: 'B' }, booted: 'A', expected: { primary: 'A', trial: false } },
    { name: 'trial of B', env: { BOOT_ORDER: 'B A', BOOT_A_LEFT: '3', BOOT_B_LEFT: '0', fleet_trial: 'B' }, booted: 'B', expected: { primary: 'A', trial: true } },
    { name: 'trial failed, back on A', env: { BOOT_ORDER: 'B A', BOOT_A_LEFT: '2', BOOT_B_LEFT: '0', fleet_trial: 'B' }, booted: 'A', expected: { primary: 'A', trial: false } },
    { name: 'committed A exhausted, U-Boot fell back to B', env: { BOOT_ORDER: 'A B', BOOT_A_LEFT: '0', BOOT_B_LEFT: '2' }, booted: 'B', expected: { primary: 'B', trial: false } },
  ];
  for (const c of cases) {
    it(`reads: ${c.name}`, () => {
      expect(rauc.bootState(c.env, c.booted)).toMatchObject({ booted: c.booted, ...c.expected });
    });
  }

  it('needs the booted slot from the kernel command line', () => {
    expect(() => rauc.bootState({ BOOT_ORDER: 'A B' }, undefined)).toThrow(/rauc.slot/);
  });

  it('arms, commits and reverts in single batches', () => {
    expect(rauc.arm('B', 'A')).toEqual({ BOOT_ORDER: 'B A', BOOT_B_LEFT: '1', BOOT_A_LEFT: '3', fleet_trial: 'B' });
    const trial = { BOOT_ORDER: 'B A', BOOT_A_LEFT: '3', BOOT_B_LEFT: '0', fleet_trial: 'B' };
    const state = rauc.bootState(trial, 'B');
    expect(rauc.commit(trial, state)).toEqual({ BOOT_ORDER: 'B A', BOOT_B_LEFT: '3', fleet_trial: '' });
    expect(rauc.revert(trial, state)).toEqual({ BOOT_ORDER: 'A B', BOOT_B_LEFT: '0', fleet_trial: '' });
  });

  it('gives a committed slot its attempts back on markGood, and leaves a full one alone', () => {
    const spent = { BOOT_ORDER: 'A B', BOOT_A_LEFT: '1', BOOT_B_LEFT: '3' };
    expect(rauc.commit(spent, rauc.bootState(spent, 'A'))).toEqual({ BOOT_A_LEFT: '3' });
    const full = { BOOT_ORDER: 'A B', BOOT_A_LEFT: '3', BOOT_B_LEFT: '3' };
    expect(rauc.commit(full, rauc.bootState(full, 'A'))).toEqual({});
  });
});

describe('fw_printenv / fw_setenv formats', () => {
  it('parses name=value lines, keeping = inside values', () => {
    expect(parsePrintenv('a=1\nbootargs=root=/dev/mmcblk0p2 rw\nempty=\n\n')).toEqual({ a: '1', bootargs: 'root=/dev/mmcblk0p2 rw', empty: '' });
  });
  it('renders a script and refuses values that would inject lines', () => {
    expect(renderScript({ a: '1', gone: '' })).toBe('a=1\ngone=\n');
    expect(() => renderScript({ a: '1\nbootcmd=evil' })).toThrow(SlotError);
    expect(() => renderScript({ 'bad name': '1' })).toThrow(SlotError);
  });
});
