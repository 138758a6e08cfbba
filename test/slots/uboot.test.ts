/**
 * uboot backend specifics, against the real fw_printenv / fw_setenv and a mkenvimage environment:
 * one fw_setenv batch per step, a corrupt environment (clear error, nothing written), a redundant
 * environment, and the guards around writing and arming.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createUbootBackend } from '../../agent/slots/slot-backend-uboot.js';
import { SlotError } from '../../agent/slots/slot-backend.js';
import { FleetError } from '../../protocol/errors.js';
import { firmware, plainImage } from './conformance.js';
import { hasTool } from './helpers.js';
import { createUbootDevice } from './uboot-harness.js';
import type { UbootTestDevice } from './uboot-harness.js';

const missing = ['fw_printenv', 'fw_setenv', 'mkenvimage'].filter((t) => !hasTool(t));

const rejection = async (p: Promise<unknown>): Promise<SlotError> => {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SlotError);
  return err as SlotError;
};

describe.skipIf(missing.length > 0)(`uboot backend with real libubootenv tools${missing.length ? ` (skipped: missing ${missing.join(', ')})` : ''}`, () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-uboot-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const setenvCalls = (d: UbootTestDevice) => d.recorder.calls.filter((c) => c.file === 'fw_setenv');

  it('writes each step as ONE fw_setenv -s - batch (bootcount scheme)', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'bootcount' });
    const b = d.backend();
    await b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2')));
    expect(setenvCalls(d)).toHaveLength(0); // writing the slot never touches the environment
    await b.armTrial();
    expect(setenvCalls(d)).toHaveLength(1);
    const arm = setenvCalls(d)[0]!;
    expect(arm.args).toEqual(['-c', d.config.fwEnvConfig, '-s', '-']);
    expect(arm.options?.stdin).toBe('mender_boot_part=3\nmender_boot_part_hex=3\nupgrade_available=1\nbootcount=0\nbootlimit=1\n');
    await b.reboot();
    await d.boot();
    const onTrial = d.backend();
    await onTrial.markGood();
    expect(setenvCalls(d)).toHaveLength(2);
    expect(setenvCalls(d)[1]!.options?.stdin).toBe('mender_boot_part=3\nmender_boot_part_hex=3\nupgrade_available=0\nbootcount=0\n');
    await onTrial.markGood(); // idempotent, and writes nothing the second time
    expect(setenvCalls(d)).toHaveLength(2);
    expect(await d.sim.env.read()).toMatchObject({ mender_boot_part: '3', upgrade_available: '0', bootcount: '0' });
  });

  it('writes each step as ONE batch (boot-order scheme) and gives the committed slot its attempt back once per boot', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'boot-order', cmdline: true });
    const b = d.backend();
    await b.armTrial();
    // The first read confirms the committed slot's boot (its spent attempt back), then the arm batch.
    expect(setenvCalls(d).map((c) => c.options?.stdin)).toEqual(['BOOT_A_LEFT=3\n', 'BOOT_ORDER=B A\nBOOT_B_LEFT=1\nBOOT_A_LEFT=3\nfleet_trial=B\n']);
    await b.markBad(); // disarm before the reboot
    expect(await d.sim.env.read()).toMatchObject({ BOOT_ORDER: 'A B', BOOT_B_LEFT: '0' });
    expect((await d.sim.env.read()).fleet_trial).toBeUndefined();
    await b.reboot();
    await d.boot();
    expect((await d.sim.env.read()).BOOT_A_LEFT).toBe('2');
    const again = d.backend();
    await again.bootState(); // the agent starting is enough: the committed slot gets its attempt back
    expect((await d.sim.env.read()).BOOT_A_LEFT).toBe('3');
    await again.bootState();
    await again.markGood();
    expect(setenvCalls(d)).toHaveLength(4); // once per boot, not on every read
    for (let i = 0; i < 5; i++) {
      await d.boot();
      await d.backend().bootState();
    }
    expect(d.sim.boots.slice(-5)).toEqual(['A', 'A', 'A', 'A', 'A']);
  });

  it('refuses a corrupt environment with a clear error and writes nothing', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'bootcount' });
    const envPath = d.envImages[0]!;
    const bytes = await readFile(envPath);
    bytes.writeUInt32LE((bytes.readUInt32LE(0) ^ 0xffffffff) >>> 0, 0); // break the CRC
    await writeFile(envPath, bytes);
    const b = d.backend();
    const err = await rejection(b.bootState());
    expect(err.code).toBe('bootloader-error');
    expect(err.message).toMatch(/cannot read the U-Boot environment.*corrupt.*nothing was written/);
    expect((await rejection(b.armTrial())).code).toBe('bootloader-error');
    expect((await rejection(b.markGood())).code).toBe('bootloader-error');
    expect(setenvCalls(d)).toHaveLength(0);
    expect((await readFile(envPath)).equals(bytes)).toBe(true);
  });

  it('with a redundant environment, a step torn by power loss leaves the previous one', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'bootcount', redundant: true, cmdline: true });
    const before = await Promise.all(d.envImages.map((p) => readFile(p)));
    const b = d.backend();
    await b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2')));
    await b.armTrial();
    const after = await Promise.all(d.envImages.map((p) => readFile(p)));
    // libubootenv writes the inactive copy and flips the flag: exactly one copy changed content.
    const changed = after.map((buf, i) => !buf.equals(before[i]!));
    expect(changed.filter(Boolean)).toHaveLength(1);
    expect(await b.bootState()).toMatchObject({ booted: 'A', primary: 'A', trial: false });
    expect(await d.sim.env.read()).toMatchObject({ upgrade_available: '1', mender_boot_part: '3' });
    // Power lost in the middle of that write: the new copy is garbage, so the old one is used again.
    const newer = d.envImages[changed.indexOf(true)]!;
    const torn = await readFile(newer);
    torn.fill(0xff, 8, 64);
    await writeFile(newer, torn);
    expect(await d.sim.env.read()).toMatchObject({ upgrade_available: '0', mender_boot_part: '2' });
    await d.boot();
    expect(await d.backend().bootState()).toMatchObject({ booted: 'A', primary: 'A', trial: false });
  });

  it('never overwrites the fallback during a trial, and disarms a pending trial before rewriting its slot', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'bootcount' });
    const v2 = await plainImage(dir, 'v2.img', firmware('v2'));
    const v3 = await plainImage(dir, 'v3.img', firmware('v3'));
    const b = d.backend();
    await b.writeInactive(v2);
    await b.armTrial();
    await b.writeInactive(v3); // a newer release arrived before the reboot
    expect(await d.sim.env.read()).toMatchObject({ upgrade_available: '0', mender_boot_part: '2' });
    await b.armTrial();
    await b.reboot();
    await d.boot();
    const onTrial = d.backend();
    expect(await onTrial.bootState()).toMatchObject({ booted: 'B', primary: 'A', trial: true });
    const slotA = await d.readSlot('A', 1024);
    const err = await rejection(onTrial.writeInactive(v2));
    expect(err.message).toMatch(/must not be overwritten/);
    expect((await d.readSlot('A', 1024)).equals(slotA)).toBe(true);
    expect((await rejection(onTrial.armTrial())).message).toMatch(/already on an uncommitted trial/);
  });

  it('reports a device that takes no more bytes as write-failed and arms nothing', async () => {
    if (!existsSync('/dev/full')) return;
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'bootcount' });
    const b = createUbootBackend({ ...d.config, slots: { A: d.config.slots.A, B: { device: '/dev/full' } } }, { runner: d.recorder.runner });
    expect((await rejection(b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2'))))).code).toBe('write-failed');
    expect(setenvCalls(d)).toHaveLength(0);
  });

  it('says which words it looked for when the kernel command line names no slot', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'boot-order', cmdline: true });
    await writeFile(d.config.procCmdline!, 'console=ttyS0 root=/dev/sda1\n');
    expect((await rejection(d.backend().bootState())).message).toMatch(/rauc.slot=A nor rauc.slot=B/);
  });

  it('turns a failed reboot command into a bootloader-error', async () => {
    const d = await createUbootDevice(dir, firmware('v1'), { scheme: 'bootcount' });
    const b = createUbootBackend({ ...d.config, rebootCommand: ['false'] });
    expect((await rejection(b.reboot())).code).toBe('bootloader-error');
  });
});

describe('uboot backend config', () => {
  it('fills the documented defaults', () => {
    const b = createUbootBackend({ kind: 'uboot', slots: { A: { device: '/dev/mmcblk0p2' }, B: { device: '/dev/mmcblk0p3' } } });
    expect(b.kind).toBe('uboot');
  });
  it('rejects the same device for both slots and an out-of-range bootlimit, naming the field', () => {
    const same = () => createUbootBackend({ kind: 'uboot', slots: { A: { device: '/dev/x' }, B: { device: '/dev/x' } } });
    expect(same).toThrow(FleetError);
    expect(same).toThrow(/slots/);
    expect(() => createUbootBackend({ kind: 'uboot', slots: { A: { device: '/a' }, B: { device: '/b' } }, bootcount: { bootlimit: 0 } })).toThrow(/bootcount.bootlimit/);
  });
});
