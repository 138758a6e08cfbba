/**
 * The A/B slot backend interface: everything the agent asks of a bootloader and its two slots.
 * Implementations: `file` (image files and a simulated bootloader; tests and the simulator), `uboot`,
 * `rauc`, `tryboot` (Raspberry Pi). One conformance suite runs against all of them.
 *
 * Semantics every backend keeps (the same as Raspberry Pi tryboot and U-Boot bootcount):
 * - The booted slot is never written. `writeInactive` writes the other slot and reads it back; it leaves
 *   the boot configuration untouched, so a power loss during the write boots the old slot.
 * - `armTrial` makes only the next boot (or a bounded number of attempts) run the inactive slot. If that
 *   boot is not committed with `markGood` — crash, power loss, health check failure — the bootloader
 *   returns to the primary slot by itself.
 * - Rollback after a commit is the same path in reverse: arm a trial of the other slot (it still holds
 *   the previous firmware), reboot, run the health checks, commit.
 * - `writeDurable` keeps one short line (the agent's durable record: security floor, freshness
 *   counters, what each slot holds) in the boot environment, apart from the agent's data directory;
 *   `readDurable` returns the last line written, whole, or null — never a torn mix.
 */
import type { SlotName } from '@fleet/protocol/update-state';
import { FleetError } from '@fleet/protocol/errors';

export type SlotBackendKind = 'file' | 'memory' | 'uboot' | 'rauc' | 'tryboot';

/** What the bootloader reports about the boot we are running in. */
export interface BootState {
  /** Slot the running system booted from. */
  booted: SlotName;
  /** Slot the bootloader boots by default: the last committed one. */
  primary: SlotName;
  /** This boot is an uncommitted trial of `booted` (booted !== primary until committed). */
  trial: boolean;
  /** Boots since the last commit, where the bootloader counts them. */
  bootCount?: number;
  /**
   * Identifies this boot (changes on every power-on). Lets the agent tell "killed before the reboot"
   * from "rebooted and the bootloader fell back". Optional: the agent falls back to
   * /proc/sys/kernel/random/boot_id on real backends.
   */
  bootId?: string;
}

/** An image already downloaded and verified against the signed manifest. */
export interface VerifiedImage {
  path: string;
  size: number;
  sha256: string;
}

export interface SlotBackend {
  readonly kind: SlotBackendKind;
  /** Reads the bootloader's view of the current boot. */
  bootState(): Promise<BootState>;
  /**
   * Writes the image into the inactive slot, then reads it back and compares sha256. Throws a
   * SlotError `write-failed` or `readback-failed`; the slot is then never armed.
   */
  writeInactive(image: VerifiedImage): Promise<void>;
  /** Arms a one-shot trial boot of the inactive slot for the next reboot. */
  armTrial(): Promise<void>;
  /** Commits the booted trial slot as primary. Idempotent; a no-op outside a trial. */
  markGood(): Promise<void>;
  /** Marks the booted trial slot bad, so the next boot returns to the primary. Idempotent. */
  markBad(): Promise<void>;
  /** Restarts the device (or, in tests and the simulator, hands control to the injected reboot). */
  reboot(): Promise<void>;
  /** The durable record last written to the boot environment, or null when none was. */
  readDurable(): Promise<string | null>;
  /**
   * Replaces it (one line, at most DURABLE_MAX_BYTES); resolves once it survives a power loss. A
   * power loss during the write leaves the previous record or the new one.
   */
  writeDurable(record: string): Promise<void>;
}

/**
 * Longest durable record a backend must hold: a U-Boot variable set through `fw_setenv -s` (whose
 * script lines libubootenv reads up to 1023 bytes, name included), a small file on a FAT partition.
 */
export const DURABLE_MAX_BYTES = 960;

/** Refuses what no backend can store as one line. */
export function checkDurableRecord(record: string): void {
  if (/[\n\r]/.test(record)) throw new SlotError('bootloader-error', 'the durable record must be one line');
  if (Buffer.byteLength(record) > DURABLE_MAX_BYTES) {
    throw new SlotError('bootloader-error', `the durable record is ${Buffer.byteLength(record)} bytes; at most ${DURABLE_MAX_BYTES} fit the boot environment`);
  }
}

export type SlotErrorCode = 'write-failed' | 'readback-failed' | 'bootloader-error' | 'not-supported';

export class SlotError extends FleetError {
  constructor(code: SlotErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
