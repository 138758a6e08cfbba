/**
 * The `file` slot backend: slots are image files in a directory, and a small simulated bootloader
 * keeps its state in `bootloader.json` beside them. I/O adapter (tests, demos and the simulator).
 *
 * The bootloader has the semantics of Raspberry Pi tryboot (trialBoots = 1) and U-Boot bootcount
 * (trialBoots = bootlimit): an armed trial boots the inactive slot at most `trialBoots` times; a boot
 * after that without a commit (crash, power loss, mark-bad, an agent that never came up) boots the
 * primary slot again. `markGood` makes the booted slot primary.
 *
 * A "reboot" here does not restart anything by itself: `reboot()` records that the system went down
 * and calls `onReboot`. The harness (SimulatedDevice, a test, the simulator) stops the agent, calls
 * `powerOn()` — the bootloader picking a slot — and starts a new agent on the same data directory.
 */
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SlotNameSchema, otherSlot, type SlotName } from '@fleet/protocol/update-state';
import { Sha256HexSchema } from '@fleet/protocol/ids';
import { FILE_PASS_CHUNK, sha256OfFile } from '../file-passes.js';
import { parsePayload } from '@fleet/protocol/parse';
import { writeFileAtomic } from '../state-store.js';
import { SlotError, checkDurableRecord, type BootState, type SlotBackend, type VerifiedImage } from './slot-backend.js';
import { DurableCopies } from './durable-copies.js';
import { errorMessage } from '@fleet/protocol/errors';

const SlotContentSchema = z.object({ size: z.number().int().nonnegative(), sha256: Sha256HexSchema }).nullable();

export const BootloaderStateSchema = z.object({
  primary: SlotNameSchema,
  booted: SlotNameSchema,
  /** Armed trial: the slot and the boots it has left. */
  trial: z.object({ slot: SlotNameSchema, bootsLeft: z.number().int().nonnegative() }).nullable(),
  /** Boots since the last commit. */
  bootCount: z.number().int().nonnegative(),
  /** Every power-on, ever; the boot id. */
  powerOns: z.number().int().nonnegative(),
  /** What each slot holds (null while being written or never written). */
  slots: z.object({ A: SlotContentSchema, B: SlotContentSchema }),
  /** The system went down via reboot() and has not been powered on since. */
  down: z.boolean(),
});
export type BootloaderState = z.infer<typeof BootloaderStateSchema>;

export interface FileSlotBackendOptions {
  dir: string;
  /** Trial boots before falling back (default 1, like tryboot). */
  trialBoots?: number;
  /** Called after `reboot()` recorded the shutdown; the harness powers the device on again. */
  onReboot?: () => void | Promise<void>;
}

export class FileSlotBackend implements SlotBackend {
  readonly kind = 'file' as const;
  /** Settable after construction, so a harness can wire the reboot flow to the backend it was given. */
  onReboot: (() => void | Promise<void>) | undefined;
  private readonly trialBoots: number;
  /** Power cycles seen by this instance: work started before one is abandoned (power loss). */
  private epoch = 0;
  /** The simulated boot environment's durable record (durable.0 / durable.1 beside the slots). */
  private readonly durable: DurableCopies;

  private constructor(
    private readonly dir: string,
    options: FileSlotBackendOptions,
  ) {
    this.trialBoots = options.trialBoots ?? 1;
    this.onReboot = options.onReboot;
    this.durable = new DurableCopies(join(dir, 'durable'));
  }

  /**
   * Opens (or, on first use, creates) a slot directory. A new directory starts with slot A booted and
   * primary, holding `factoryImage` (or an empty placeholder image).
   */
  static async create(options: FileSlotBackendOptions & { factoryImage?: string }): Promise<FileSlotBackend> {
    const backend = new FileSlotBackend(options.dir, options);
    await mkdir(options.dir, { recursive: true });
    const existing = await backend.readStateOrNull();
    if (!existing) {
      // The booted slot is bootable by definition (we run on it): without a factory image it is an
      // empty placeholder file, so a later rollback to it can be armed.
      if (options.factoryImage !== undefined) await copyFile(options.factoryImage, backend.slotPath('A'));
      else await writeFile(backend.slotPath('A'), '');
      const content = await sha256OfFile(backend.slotPath('A'));
      await backend.writeState({
        primary: 'A',
        booted: 'A',
        trial: null,
        bootCount: 0,
        powerOns: 1,
        slots: { A: content, B: null },
        down: false,
      });
    }
    return backend;
  }

  slotPath(slot: SlotName): string {
    return join(this.dir, `slot-${slot}.img`);
  }

  private get statePath(): string {
    return join(this.dir, 'bootloader.json');
  }

  private async readStateOrNull(): Promise<BootloaderState | null> {
    let raw: Buffer;
    try {
      raw = await readFile(this.statePath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new SlotError('bootloader-error', `cannot read ${this.statePath}: ${errorMessage(err)}`, { cause: err });
    }
    const parsed = parsePayload(BootloaderStateSchema, raw, this.statePath);
    if (!parsed.ok) throw new SlotError('bootloader-error', parsed.error.message);
    return parsed.value;
  }

  /** The simulated bootloader's full state (for tests and the harness). */
  async state(): Promise<BootloaderState> {
    const s = await this.readStateOrNull();
    if (!s) throw new SlotError('bootloader-error', `${this.statePath} is missing; create the backend first`);
    return s;
  }

  private async writeState(state: BootloaderState): Promise<void> {
    await writeFileAtomic(this.statePath, JSON.stringify(state));
  }

  async bootState(): Promise<BootState> {
    const s = await this.state();
    return { booted: s.booted, primary: s.primary, trial: s.booted !== s.primary, bootCount: s.bootCount, bootId: `boot-${s.powerOns}` };
  }

  async writeInactive(image: VerifiedImage): Promise<void> {
    const epoch = this.epoch;
    const s = await this.state();
    const target = otherSlot(s.booted);
    // The slot is unbootable from the first byte written: disarm it and forget its content first.
    await this.writeStateIfPowered(epoch, { ...s, trial: s.trial?.slot === target ? null : s.trial, slots: { ...s.slots, [target]: null } });
    const path = this.slotPath(target);
    try {
      await this.copyUnlessPowerLost(image.path, path, epoch);
    } catch (err) {
      throw new SlotError('write-failed', `writing slot ${target} (${path}) failed: ${errorMessage(err)}`, { cause: err });
    }
    const back = await sha256OfFile(path);
    if (back.size !== image.size || back.sha256 !== image.sha256) {
      throw new SlotError('readback-failed', `slot ${target} read back ${back.size} bytes with sha256 ${back.sha256}, expected ${image.size} with ${image.sha256}`);
    }
    if (epoch !== this.epoch) throw new SlotError('write-failed', `power was lost while slot ${target} was written`);
    const after = await this.state();
    await this.writeStateIfPowered(epoch, { ...after, slots: { ...after.slots, [target]: back } });
  }

  /**
   * Copies chunk by chunk and stops when the (simulated) power goes: a write from before a power
   * cycle must not keep running into the next boot, as it cannot on real hardware.
   */
  private async copyUnlessPowerLost(from: string, to: string, epoch: number): Promise<void> {
    const out = await open(to, 'w');
    try {
      let position = 0;
      for await (const chunk of createReadStream(from, { highWaterMark: FILE_PASS_CHUNK })) {
        if (epoch !== this.epoch) throw new Error('power lost during the write');
        const buf = chunk as Buffer;
        await out.write(buf, 0, buf.length, position);
        position += buf.length;
      }
      await out.sync();
    } finally {
      await out.close();
    }
  }

  async armTrial(): Promise<void> {
    const epoch = this.epoch;
    const s = await this.state();
    const target = otherSlot(s.booted);
    if (!s.slots[target]) throw new SlotError('bootloader-error', `slot ${target} holds no complete image; refusing to arm it`);
    await this.writeStateIfPowered(epoch, { ...s, trial: { slot: target, bootsLeft: this.trialBoots } });
  }

  async markGood(): Promise<void> {
    const epoch = this.epoch;
    const s = await this.state();
    if (s.booted === s.primary) return;
    await this.writeStateIfPowered(epoch, { ...s, primary: s.booted, trial: null, bootCount: 0 });
  }

  async markBad(): Promise<void> {
    const epoch = this.epoch;
    const s = await this.state();
    if (s.booted === s.primary) return;
    await this.writeStateIfPowered(epoch, { ...s, trial: null });
  }

  async reboot(): Promise<void> {
    const epoch = this.epoch;
    const s = await this.state();
    await this.writeStateIfPowered(epoch, { ...s, down: true });
    await this.onReboot?.();
  }

  readDurable(): Promise<string | null> {
    return this.durable.read();
  }

  async writeDurable(record: string): Promise<void> {
    checkDurableRecord(record);
    await this.durable.write(record);
  }

  /** A bootloader update begun before a power cycle is lost with the power (read-modify-write race). */
  private async writeStateIfPowered(epoch: number, state: BootloaderState): Promise<void> {
    if (epoch !== this.epoch) throw new SlotError('bootloader-error', 'power was lost before the bootloader update was written');
    await this.writeState(state);
  }

  // ---- the simulated hardware (not part of SlotBackend) ----

  /**
   * Power-on: the bootloader picks a slot. An armed trial with boots left boots the trial slot and
   * uses one boot; otherwise (no trial, or none left) the primary boots and the trial is dropped.
   */
  async powerOn(): Promise<BootState> {
    this.epoch++;
    const s = await this.state();
    const next: BootloaderState = { ...s, powerOns: s.powerOns + 1, down: false, bootCount: s.bootCount + 1 };
    if (s.trial && s.trial.bootsLeft > 0 && s.slots[s.trial.slot] && s.trial.slot !== s.primary) {
      next.booted = s.trial.slot;
      next.trial = { slot: s.trial.slot, bootsLeft: s.trial.bootsLeft - 1 };
    } else {
      next.booted = s.primary;
      next.trial = null;
    }
    await this.writeState(next);
    return this.bootState();
  }
}
