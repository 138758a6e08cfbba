/**
 * An in-memory A/B slot backend with a simulated bootloader, for the simulator: thousands of devices
 * in one process without thousands of image files. Same semantics as the `file` backend (and Raspberry
 * Pi tryboot / U-Boot bootcount): the booted slot is never written, a trial is one-shot, and a trial
 * that is not committed falls back to the primary slot at the next boot.
 *
 * It also keeps the ground truth the report needs — which image each slot holds, whether a write was
 * cut off, which firmware actually booted — and tells a device killed by its firmware (a brick in the
 * scenario) from a device the system left without a bootable slot.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SlotError, checkDurableRecord, type BootState, type SlotBackend, type VerifiedImage } from '@fleet/agent';
import type { SlotName } from '@fleet/protocol/update-state';
import { otherSlot } from '@fleet/protocol/update-state';
import { errorMessage } from '@fleet/protocol/errors';

/** What a slot holds. `intact: false` after a write was cut off by power loss. */
export interface SlotContent {
  sha256: string;
  size: number;
  intact: boolean;
  /** The bytes themselves, only with `keepBytes` (conformance tests); a fleet keeps hashes only. */
  bytes?: Buffer;
}

/** The result of a (simulated) power-on. */
export type BootResult =
  | { ok: true; slot: SlotName; trial: boolean; content: SlotContent }
  /** Neither slot can boot: the system failed this device. Must never happen. */
  | { ok: false; reason: 'no-bootable-slot' };

export interface MemorySlotBackendOptions {
  /** Image both slots hold at the factory (A is booted and primary). */
  factoryImage: { sha256: string; size: number };
  /** Called by `reboot()`: the simulator powers the device down and up again. */
  onReboot: () => void;
  /** Called when a write starts; may return a promise that the write waits for (slow flash, power-loss windows). */
  onWrite?: (image: VerifiedImage) => Promise<void> | void;
  /**
   * Reads the image the agent verified; defaults to the file at `image.path`. The backend hashes what
   * it "writes" and compares it on read-back, as a real backend does.
   */
  readImage?: (image: VerifiedImage) => Promise<Buffer>;
  /** Keep slot bytes (with `factoryBytes`), so tests can read a slot as the bootloader would. Default false. */
  keepBytes?: boolean;
  factoryBytes?: Buffer;
}

export class MemorySlotBackend implements SlotBackend {
  readonly kind = 'memory' as const;
  readonly slots: Record<SlotName, SlotContent | null>;
  primary: SlotName = 'A';
  booted: SlotName = 'A';
  trial = false;
  bootCount = 0;
  /** Power-ons so far; names each boot (`bootId`). */
  powerOns = 0;
  /** The slot armed for a one-shot trial at the next boot. */
  armed: SlotName | null = null;
  /** A write is in progress (a power loss now leaves that slot corrupt). */
  writing: SlotName | null = null;
  private writeGen = 0;
  /** Counts of what the agent asked for, for tests and the report. */
  readonly calls = { writes: 0, arms: 0, commits: 0, markBads: 0, reboots: 0, bootedBrokenSlot: 0 };

  constructor(private readonly options: MemorySlotBackendOptions) {
    const factory: SlotContent = { ...options.factoryImage, intact: true };
    if (options.keepBytes && options.factoryBytes) factory.bytes = options.factoryBytes;
    this.slots = { A: factory, B: { ...factory } };
  }

  bootState(): Promise<BootState> {
    return Promise.resolve({
      booted: this.booted,
      primary: this.primary,
      trial: this.trial,
      bootCount: this.bootCount,
      bootId: `power-on-${this.powerOns}`,
    });
  }

  async writeInactive(image: VerifiedImage): Promise<void> {
    const target = otherSlot(this.booted);
    this.calls.writes++;
    // The boot configuration is untouched: whatever was armed for the target is disarmed first, so a
    // power loss during the write boots the old slot.
    if (this.armed === target) this.armed = null;
    // Each write has a generation: a power loss (or a newer write) supersedes it, and a superseded
    // write — still running in a killed agent's promise — never touches the slot again.
    const gen = ++this.writeGen;
    this.writing = target;
    this.slots[target] = { sha256: image.sha256, size: image.size, intact: false };
    let bytes: Buffer;
    try {
      await this.options.onWrite?.(image);
      bytes = await (this.options.readImage ?? ((i: VerifiedImage) => readFile(i.path)))(image);
    } catch (err) {
      if (gen === this.writeGen) this.writing = null;
      throw new SlotError('write-failed', `writing slot ${target} failed: ${errorMessage(err)}`, { cause: err });
    }
    if (gen !== this.writeGen) {
      // Power was lost mid-write; the slot stays marked as not intact.
      throw new SlotError('write-failed', `write to slot ${target} was interrupted`);
    }
    this.writing = null;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (bytes.length !== image.size || sha256 !== image.sha256) {
      throw new SlotError('readback-failed', `slot ${target} read back ${bytes.length} bytes with sha256 ${sha256}, expected ${image.size} bytes with ${image.sha256}`);
    }
    this.slots[target] = { sha256, size: bytes.length, intact: true, ...(this.options.keepBytes ? { bytes } : {}) };
  }

  armTrial(): Promise<void> {
    const target = otherSlot(this.booted);
    const content = this.slots[target];
    if (!content?.intact) {
      return Promise.reject(new SlotError('bootloader-error', `slot ${target} holds no complete image; refusing to arm it`));
    }
    this.armed = target;
    this.calls.arms++;
    return Promise.resolve();
  }

  markGood(): Promise<void> {
    if (this.trial) {
      this.primary = this.booted;
      this.trial = false;
      this.bootCount = 0;
      this.calls.commits++;
    }
    return Promise.resolve();
  }

  markBad(): Promise<void> {
    if (this.trial) {
      this.armed = null;
      this.calls.markBads++;
    }
    return Promise.resolve();
  }

  reboot(): Promise<void> {
    this.calls.reboots++;
    this.options.onReboot();
    return Promise.resolve();
  }

  /** The boot environment's durable record (survives power cycles, like the slots). */
  durable: string | null = null;

  readDurable(): Promise<string | null> {
    return Promise.resolve(this.durable);
  }

  writeDurable(record: string): Promise<void> {
    return Promise.resolve().then(() => {
      checkDurableRecord(record);
      this.durable = record;
    });
  }

  // ---- the simulated hardware side (not part of SlotBackend) ----

  /** Power lost now: an in-progress write leaves its slot corrupt. RAM state (nothing here) is lost. */
  powerLoss(): void {
    if (this.writing !== null) {
      const slot = this.slots[this.writing];
      if (slot) slot.intact = false;
      this.writing = null;
      this.writeGen++;
    }
  }

  /** The last power-on's result (the simulator reads it to tell a system brick from a firmware one). */
  lastBoot: BootResult | null = null;

  /**
   * Power-on as the agent's SimulatedDevice harness calls it: whatever was in flight is cut (a torn
   * write stays torn), then the bootloader runs.
   */
  powerOn(): BootResult {
    this.powerLoss();
    this.lastBoot = this.boot();
    return this.lastBoot;
  }

  /** The bootloader at power-on: a one-shot armed trial, else the primary; a broken trial slot falls back. */
  boot(): BootResult {
    this.bootCount++;
    this.powerOns++;
    const armed = this.armed;
    this.armed = null;
    if (armed !== null && armed !== this.primary) {
      const content = this.slots[armed];
      if (content?.intact) {
        this.booted = armed;
        this.trial = true;
        return { ok: true, slot: armed, trial: true, content };
      }
      this.calls.bootedBrokenSlot++;
    }
    const primary = this.slots[this.primary];
    if (!primary?.intact) return { ok: false, reason: 'no-bootable-slot' };
    this.booted = this.primary;
    this.trial = false;
    return { ok: true, slot: this.primary, trial: false, content: primary };
  }

  /** The image the device is running now. */
  running(): SlotContent | null {
    return this.slots[this.booted];
  }
}
