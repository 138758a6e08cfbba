/**
 * tryboot backend specifics: the exact reboot argument, autoboot.txt left alone on failure and rewritten
 * (verified) on commit, the device-tree integers, and the armed marker that survives an agent restart.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUTOBOOT_MAX_BYTES, autobootValue, parseAutoboot, renderAutoboot, withPartitions, writeAutoboot } from '../../agent/slots/autoboot-txt.js';
import { createTrybootBackend } from '../../agent/slots/slot-backend-tryboot.js';
import { SlotError } from '../../agent/slots/slot-backend.js';
import { firmware, plainImage } from './conformance.js';
import { TEST_REBOOT } from './helpers.js';
import { INITIAL_AUTOBOOT, createTrybootDevice } from './tryboot-harness.js';

const rejection = async (p: Promise<unknown>): Promise<SlotError> => {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SlotError);
  return err as SlotError;
};

describe('autoboot.txt', () => {
  it('reads the sections the firmware reads', () => {
    const a = parseAutoboot(INITIAL_AUTOBOOT);
    expect(autobootValue(a, 'all', 'boot_partition')).toBe('2');
    expect(autobootValue(a, 'tryboot', 'boot_partition')).toBe('3');
    expect(autobootValue(a, 'all', 'tryboot_a_b')).toBe('1');
  });

  it('swaps the partitions in place, keeping every other line', () => {
    const text = '# A/B layout\n[all]\ntryboot_a_b=1\nboot_partition=2\nboot_delay=0\n[tryboot]\nboot_partition=3\n';
    const out = renderAutoboot(withPartitions(parseAutoboot(text), 3, 2));
    expect(out).toBe('# A/B layout\n[all]\ntryboot_a_b=1\nboot_partition=3\nboot_delay=0\n[tryboot]\nboot_partition=2\n');
  });

  it('creates missing sections and keys', () => {
    expect(renderAutoboot(withPartitions(parseAutoboot(''), 2, 3))).toBe('[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n');
  });

  it('refuses to write more than the firmware reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-autoboot-'));
    try {
      const path = join(dir, 'autoboot.txt');
      await writeFile(path, INITIAL_AUTOBOOT);
      const err = await rejection(writeAutoboot(path, `${INITIAL_AUTOBOOT}#${'x'.repeat(AUTOBOOT_MAX_BYTES)}\n`));
      expect(err.message).toMatch(/512/);
      expect(await readFile(path, 'utf8')).toBe(INITIAL_AUTOBOOT);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('tryboot backend', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-tryboot-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("arms with exactly one argument, '0 tryboot', and reboots plainly otherwise", async () => {
    const d = await createTrybootDevice(dir, firmware('v1'));
    const b = d.backend();
    await b.reboot();
    expect(d.recorder.takeReboot()).toEqual([]);
    await b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2')));
    await b.armTrial();
    // The agent restarts between arming and rebooting: the marker in /run still says "armed".
    await d.backend().reboot();
    expect(d.recorder.calls.at(-1)).toMatchObject({ file: TEST_REBOOT, args: ['0 tryboot'] });
    await d.boot();
    expect(d.boots.at(-1)).toEqual({ partition: 3, tryboot: true });
  });

  it('leaves autoboot.txt byte for byte alone when the trial fails', async () => {
    const d = await createTrybootDevice(dir, firmware('v1'));
    const b = d.backend();
    await b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2')));
    await b.armTrial();
    await b.reboot();
    await d.boot();
    const before = await readFile(d.autobootPath);
    const onTrial = d.backend();
    expect(await onTrial.bootState()).toEqual({ booted: 'B', primary: 'A', trial: true });
    await onTrial.markBad();
    await onTrial.reboot();
    expect(d.recorder.calls.at(-1)!.args).toEqual([]); // an ordinary reboot, never tryboot again
    expect((await readFile(d.autobootPath)).equals(before)).toBe(true);
    await d.boot();
    expect(d.boots.at(-1)).toEqual({ partition: 2, tryboot: false });
  });

  it('commits by rewriting autoboot.txt with the partitions swapped', async () => {
    const d = await createTrybootDevice(dir, firmware('v1'));
    const b = d.backend();
    await b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2')));
    await b.armTrial();
    await b.reboot();
    await d.boot();
    await d.backend().markGood();
    expect(await readFile(d.autobootPath, 'utf8')).toBe('[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n');
  });

  it('reads the device tree strictly', async () => {
    const d = await createTrybootDevice(dir, firmware('v1'));
    await writeFile(join(d.dtDir, 'partition'), Buffer.from([0, 0, 3]));
    expect((await rejection(d.backend().bootState())).message).toMatch(/4-byte big-endian/);
    await writeFile(join(d.dtDir, 'partition'), Buffer.from([0, 0, 0, 9]));
    expect((await rejection(d.backend().bootState())).message).toMatch(/neither slot/);
    await rm(join(d.dtDir, 'partition'));
    expect((await rejection(d.backend().bootState())).code).toBe('not-supported');
  });

  it('never writes the fallback while a trial runs, and a failed image write drops a pending arm', async () => {
    const d = await createTrybootDevice(dir, firmware('v1'));
    const b = d.backend();
    await b.writeInactive(await plainImage(dir, 'v2.img', firmware('v2')));
    await b.armTrial();
    const bad = { ...(await plainImage(dir, 'v3.img', firmware('v3'))), sha256: '0'.repeat(64) };
    expect((await rejection(b.writeInactive(bad))).code).toBe('readback-failed');
    await b.reboot();
    expect(d.recorder.calls.at(-1)!.args).toEqual([]);
    await d.boot();
    expect(await d.backend().bootState()).toEqual({ booted: 'A', primary: 'A', trial: false });

    await b.writeInactive(await plainImage(dir, 'v2b.img', firmware('v2')));
    await d.backend().armTrial();
    await d.backend().reboot();
    await d.boot();
    expect((await rejection(d.backend().writeInactive(await plainImage(dir, 'v4.img', firmware('v4'))))).message).toMatch(/must not be overwritten/);
  });

  it('rejects a config with both slots on one partition', () => {
    expect(() => createTrybootBackend({ kind: 'tryboot', slots: { A: { device: '/dev/a', partition: 2 }, B: { device: '/dev/b', partition: 2 } } })).toThrow(/partition/);
  });
});
