/**
 * The ONE conformance suite every SlotBackend passes (file, uboot in both schemes, rauc, tryboot). A
 * harness supplies a fresh simulated device: a backend factory (one fresh instance per boot, as the
 * agent builds it) and the bootloader's side (boot after a reboot or a power loss). Both slots start
 * with firmware v1, slot A booted and committed.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SlotName } from '../../protocol/update-state.js';
import type { BootState, SlotBackend, VerifiedImage } from '../../agent/slots/slot-backend.js';
import { DURABLE_MAX_BYTES, SlotError } from '../../agent/slots/slot-backend.js';

export interface SlotDevice {
  /** A new backend instance, as the agent builds one after each boot. */
  backend(): SlotBackend | Promise<SlotBackend>;
  /**
   * The device starts. After `backend.reboot()` it is the requested reboot (with whatever arguments it
   * carried); without one it stands for a power loss or crash. Runs the simulated bootloader.
   */
  boot(): Promise<void>;
  /** The first `size` bytes of a slot, as the bootloader would load them. */
  readSlot(slot: SlotName, size: number): Promise<Buffer>;
  /** Power loss in the middle of a write: puts `partial` at the start of the slot, nothing else. */
  tearWrite(slot: SlotName, partial: Buffer): Promise<void>;
  /** Power cycles an uncommitted trial can survive before the bootloader returns to the primary. */
  trialBoots: number;
  dispose(): Promise<void>;
}

export interface SlotHarness {
  name: string;
  /** Set when the machine cannot run this backend for real; the suite then reports a skip. */
  skipReason?: string | undefined;
  /** A fresh device in `dir` whose two slots hold `initial`; A booted and committed. */
  create(dir: string, initial: VerifiedImage): Promise<SlotDevice>;
  /**
   * Turns firmware bytes into what `writeInactive` takes (the rauc harness wraps them in a bundle).
   * Default: the bytes as a plain image file.
   */
  image?(dir: string, name: string, content: Buffer): Promise<VerifiedImage>;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes `content` to `dir/name` and describes it as a verified image. */
export async function plainImage(dir: string, name: string, content: Buffer): Promise<VerifiedImage> {
  const path = join(dir, name);
  await writeFile(path, content);
  return { path, size: content.length, sha256: sha256(content) };
}

/** Deterministic firmware contents (different per label, not compressible to the same thing). */
export function firmware(label: string, size = 48 * 1024): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(label).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function slotBackendConformance(harness: SlotHarness): void {
  // A skipped run says why in its name, so a report never passes a missing tool off as a pass.
  const title = `SlotBackend conformance: ${harness.name}${harness.skipReason ? ` (skipped: ${harness.skipReason})` : ''}`;
  describe.skipIf(harness.skipReason !== undefined)(title, () => {
    let dir: string;
    let device: SlotDevice;
    const v1 = firmware('v1');
    const v2 = firmware('v2');
    let v2Image: VerifiedImage;
    const makeImage = (name: string, content: Buffer): Promise<VerifiedImage> =>
      (harness.image ?? ((d, n, c) => plainImage(d, n, c)))(dir, name, content);

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'fleet-slots-'));
      device = await harness.create(dir, await plainImage(dir, 'v1.img', v1));
      v2Image = await makeImage('v2', v2);
    });
    afterEach(async () => {
      await device.dispose();
      await rm(dir, { recursive: true, force: true });
    });

    const state = async (): Promise<BootState> => (await device.backend()).bootState();
    const expectState = async (booted: SlotName, primary: SlotName, trial: boolean): Promise<void> => {
      expect(await state()).toMatchObject({ booted, primary, trial });
    };
    const bootedContent = async (): Promise<Buffer> => device.readSlot((await state()).booted, v1.length);
    /**
     * A boot that reaches the agent, which reads the boot state and does nothing else (no update). RAUC
     * and the BOOT_ORDER scheme spend an attempt on every boot; the backend must give it back by itself,
     * or the device would switch slots after a few ordinary reboots.
     */
    const healthyBoot = async (): Promise<void> => {
      await device.boot();
      await (await device.backend()).bootState();
    };
    /** The agent's install: write, arm, reboot; then the device boots. */
    const installAndReboot = async (): Promise<void> => {
      const b = await device.backend();
      await b.writeInactive(v2Image);
      await b.armTrial();
      await b.reboot();
      await device.boot();
    };

    it('starts on A, committed; markGood and markBad outside a trial change nothing', async () => {
      await expectState('A', 'A', false);
      const b = await device.backend();
      await b.markGood();
      await b.markBad();
      await expectState('A', 'A', false);
      await b.reboot();
      await device.boot();
      await expectState('A', 'A', false);
      expect(sha256(await bootedContent())).toBe(sha256(v1));
    });

    it('installs into the inactive slot, boots it on trial, commits it, and can roll back the same way', async () => {
      const b = await device.backend();
      await b.writeInactive(v2Image);
      expect(sha256(await device.readSlot('B', v2.length))).toBe(sha256(v2));
      await expectState('A', 'A', false); // writing never touches the boot configuration
      await b.armTrial();
      await b.reboot();
      await device.boot();
      await expectState('B', 'A', true);
      expect(sha256(await bootedContent())).toBe(sha256(v2));
      const onTrial = await device.backend();
      await onTrial.markGood();
      await expectState('B', 'B', false);
      await onTrial.markGood(); // idempotent
      await expectState('B', 'B', false);
      await onTrial.reboot();
      await device.boot();
      await expectState('B', 'B', false);
      await (await device.backend()).markGood();

      // Rollback after a commit: a trial of the other slot, which still holds v1.
      const back = await device.backend();
      await back.armTrial();
      await back.reboot();
      await device.boot();
      await expectState('A', 'B', true);
      expect(sha256(await bootedContent())).toBe(sha256(v1));
      await (await device.backend()).markGood();
      await expectState('A', 'A', false);
    });

    it('a trial marked bad goes back to the old slot on the next reboot', async () => {
      await installAndReboot();
      await expectState('B', 'A', true);
      const b = await device.backend();
      await b.markBad();
      await b.markBad(); // idempotent
      expect((await state()).booted).toBe('B'); // still running the trial until the reboot
      await b.reboot();
      await device.boot();
      await expectState('A', 'A', false);
      expect(sha256(await bootedContent())).toBe(sha256(v1));
      // and it stays there
      for (let i = 0; i < 6; i++) {
        await (await device.backend()).reboot();
        await healthyBoot();
        await expectState('A', 'A', false);
      }
    });

    it('a trial that is never committed (crash loop) returns to the old slot within its bound', async () => {
      await installAndReboot();
      await expectState('B', 'A', true);
      let boots = 0;
      while ((await state()).booted === 'B' && boots < device.trialBoots) {
        await device.boot(); // power loss / watchdog reset, no markGood
        boots += 1;
      }
      await expectState('A', 'A', false);
      expect(boots).toBeGreaterThan(0);
      for (let i = 0; i < 4; i++) {
        await healthyBoot();
        await expectState('A', 'A', false);
      }
    });

    it('a write torn by a power loss boots the old slot, and the install can start over', async () => {
      await device.tearWrite('B', v2.subarray(0, v2.length / 3));
      await device.boot();
      await expectState('A', 'A', false);
      expect(sha256(await bootedContent())).toBe(sha256(v1));
      await installAndReboot();
      await expectState('B', 'A', true);
      expect(sha256(await bootedContent())).toBe(sha256(v2));
    });

    const steps = ['write', 'arm', 'reboot-into-trial', 'commit'] as const;
    for (let cut = 0; cut <= steps.length; cut++) {
      const done = steps.slice(0, cut);
      it(`power loss after [${done.join(', ') || 'nothing'}] leaves a bootable slot, the right state, and a flow that completes`, async () => {
        for (const step of done) {
          const b = await device.backend();
          if (step === 'write') await b.writeInactive(v2Image);
          if (step === 'arm') await b.armTrial();
          if (step === 'reboot-into-trial') {
            await b.reboot();
            await device.boot();
          }
          if (step === 'commit') await b.markGood();
        }
        await device.boot(); // power loss
        const s = await state();
        const content = sha256(await bootedContent());
        if (done.includes('commit')) {
          expect(s).toMatchObject({ booted: 'B', primary: 'B', trial: false });
          expect(content).toBe(sha256(v2));
          return;
        }
        // Before a commit the primary is always A. The bootloader either still runs the trial (bounded
        // attempts, U-Boot) or is back on A (one-shot, tryboot) — never a torn or unknown slot.
        expect(s.primary).toBe('A');
        if (s.booted === 'B') {
          expect(s.trial).toBe(true);
          expect(content).toBe(sha256(v2));
          expect(done).toContain('arm');
        } else {
          expect(s.trial).toBe(false);
          expect(content).toBe(sha256(v1));
        }
        // After the restart the agent finishes (or redoes) the update and commits it.
        if (!s.trial) await installAndReboot();
        await expectState('B', 'A', true);
        await (await device.backend()).markGood();
        await device.boot();
        await expectState('B', 'B', false);
        expect(sha256(await bootedContent())).toBe(sha256(v2));
      });
    }

    it('keeps the durable record in the boot environment across boots, power losses and updates', async () => {
      expect(await (await device.backend()).readDurable()).toBeNull();
      // Opaque to the backend: one line of JSON, as the agent writes it (durable-record.ts).
      const first = JSON.stringify({ v: 1, gen: 1, securityFloor: 2, note: 'quotes " spaces = and {braces}' });
      await (await device.backend()).writeDurable(first);
      expect(await (await device.backend()).readDurable()).toBe(first);
      const large = JSON.stringify({ v: 1, gen: 2, pad: 'x'.repeat(DURABLE_MAX_BYTES - 40) });
      expect(Buffer.byteLength(large)).toBeLessThanOrEqual(DURABLE_MAX_BYTES);
      await (await device.backend()).writeDurable(large);
      await device.boot(); // power loss
      expect(await (await device.backend()).readDurable()).toBe(large);
      // An update, its trial and its commit leave the record alone.
      await installAndReboot();
      await (await device.backend()).markGood();
      await healthyBoot();
      expect(await (await device.backend()).readDurable()).toBe(large);
      const third = JSON.stringify({ v: 1, gen: 3 });
      await (await device.backend()).writeDurable(third);
      await device.boot();
      expect(await (await device.backend()).readDurable()).toBe(third);
      // What no boot environment can hold is refused, and the record stays as it was.
      const b = await device.backend();
      await expect(b.writeDurable('two\nlines')).rejects.toBeInstanceOf(SlotError);
      await expect(b.writeDurable('x'.repeat(DURABLE_MAX_BYTES + 1))).rejects.toBeInstanceOf(SlotError);
      expect(await (await device.backend()).readDurable()).toBe(third);
    });

    it('an image that fails read-back is refused and never armed', async () => {
      const bad: VerifiedImage = { ...v2Image, sha256: sha256(Buffer.from('not this image')) };
      const b = await device.backend();
      const err: unknown = await b.writeInactive(bad).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SlotError);
      expect(['write-failed', 'readback-failed']).toContain((err as SlotError).code);
      await expectState('A', 'A', false);
      await b.reboot();
      await device.boot();
      await expectState('A', 'A', false);
      for (let i = 0; i < 4; i++) {
        await healthyBoot();
        await expectState('A', 'A', false);
      }
      expect(sha256(await bootedContent())).toBe(sha256(v1));
    });
  });
}
