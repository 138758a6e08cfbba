/**
 * The `uboot` slot backend: images go to the inactive partition device (verified by read-back), boot
 * decisions go to the U-Boot environment through fw_printenv / fw_setenv, one batch per step, in either
 * the Mender bootcount scheme or RAUC's BOOT_ORDER scheme. I/O shell around the pure uboot-schemes.ts.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { parseValue } from '@fleet/protocol/parse';
import type { SlotName } from '@fleet/protocol/update-state';
import { otherSlot } from '@fleet/protocol/update-state';
import type { CommandRunner, SlotBackendDeps } from './command-runner.js';
import { describeFailure, spawnRunner } from './command-runner.js';
import { writeAndVerify } from './partition-writer.js';
import type { BootState, SlotBackend, VerifiedImage } from './slot-backend.js';
import { SlotError, checkDurableRecord } from './slot-backend.js';
import { UbootEnv } from './uboot-env.js';
import type { UbootVars } from './uboot-env.js';
import type { UbootScheme } from './uboot-schemes.js';
import { bootOrderScheme, bootcountScheme } from './uboot-schemes.js';

const UbootSlotSchema = z.object({
  /** Partition device the image is written to, e.g. /dev/mmcblk0p2. */
  device: z.string().min(1),
  /** bootcount scheme: value of the partition variable for this slot. Default A: "2", B: "3". */
  partition: z.string().regex(/^[A-Za-z0-9_]+$/).optional(),
  /** boot-order scheme: this slot's name in BOOT_ORDER. Default "A" / "B". */
  bootname: z.string().regex(/^[A-Za-z0-9_]+$/).optional(),
  /**
   * A word of the kernel command line present only when this slot booted, e.g. `root=/dev/mmcblk0p2`
   * or `rauc.slot=A`. Default for boot-order: `rauc.slot=<bootname>`; for bootcount, none (the booted
   * slot is derived from the environment).
   */
  cmdline: z.string().min(1).optional(),
});

/** Agent config of the `uboot` backend. */
export const UbootBackendConfigSchema = z
  .object({
    kind: z.literal('uboot'),
    /** `bootcount` (Mender: upgrade_available/bootcount/bootlimit) or `boot-order` (RAUC: BOOT_ORDER). */
    scheme: z.enum(['bootcount', 'boot-order']).default('bootcount'),
    /** Where libubootenv finds the environment. Default /etc/fw_env.config. */
    fwEnvConfig: z.string().min(1).default('/etc/fw_env.config'),
    fwPrintenv: z.string().min(1).default('fw_printenv'),
    fwSetenv: z.string().min(1).default('fw_setenv'),
    slots: z.object({ A: UbootSlotSchema, B: UbootSlotSchema }),
    bootcount: z
      .object({
        partitionVariable: z.string().min(1).default('mender_boot_part'),
        partitionHexVariable: z.string().min(1).nullable().default('mender_boot_part_hex'),
        /** Boots an uncommitted trial may take before U-Boot switches back. */
        bootlimit: z.number().int().min(1).max(10).default(1),
      })
      .prefault({}),
    bootOrder: z
      .object({
        attempts: z.number().int().min(1).max(10).default(3),
        /** 1 makes a trial one-shot, like tryboot. */
        trialAttempts: z.number().int().min(1).max(10).default(1),
        trialVariable: z.string().min(1).default('fleet_trial'),
      })
      .prefault({}),
    /** Default /proc/cmdline. */
    procCmdline: z.string().min(1).default('/proc/cmdline'),
    /** U-Boot variable holding the agent's durable record (floor, freshness counters, slot contents). */
    durableVariable: z.string().regex(/^[A-Za-z0-9_]+$/).default('fleet_durable'),
    /** argv of a normal reboot. Default ["reboot"]. */
    rebootCommand: z.array(z.string().min(1)).min(1).default(['reboot']),
    commandTimeoutMs: z.number().int().positive().default(30_000),
  })
  .refine((c) => c.slots.A.device !== c.slots.B.device, { message: 'slots.A.device and slots.B.device must differ', path: ['slots'] });

export type UbootBackendConfig = z.infer<typeof UbootBackendConfigSchema>;

export class UbootSlotBackend implements SlotBackend {
  readonly kind = 'uboot' as const;
  private readonly env: UbootEnv;
  private readonly scheme: UbootScheme;
  private readonly runner: CommandRunner;
  /** The booted slot cannot change without a reboot (and a new process), so it is read once. */
  private booted: SlotName | undefined;
  /** The committed slot's boot was confirmed (boot-order scheme) in this process. */
  private confirmed = false;

  constructor(
    private readonly config: UbootBackendConfig,
    private readonly deps: SlotBackendDeps = {},
  ) {
    this.runner = deps.runner ?? spawnRunner;
    this.env = new UbootEnv({
      runner: this.runner,
      fwEnvConfig: config.fwEnvConfig,
      fwPrintenv: config.fwPrintenv,
      fwSetenv: config.fwSetenv,
      timeoutMs: config.commandTimeoutMs,
    });
    this.scheme =
      config.scheme === 'bootcount'
        ? bootcountScheme({
            values: { A: config.slots.A.partition ?? '2', B: config.slots.B.partition ?? '3' },
            partitionVariable: config.bootcount.partitionVariable,
            partitionHexVariable: config.bootcount.partitionHexVariable,
            bootlimit: config.bootcount.bootlimit,
            bootedFromCmdline: config.slots.A.cmdline !== undefined && config.slots.B.cmdline !== undefined,
          })
        : bootOrderScheme({
            bootnames: { A: config.slots.A.bootname ?? 'A', B: config.slots.B.bootname ?? 'B' },
            attempts: config.bootOrder.attempts,
            trialAttempts: config.bootOrder.trialAttempts,
            trialVariable: config.bootOrder.trialVariable,
          });
  }

  async bootState(): Promise<BootState> {
    return (await this.read()).state;
  }

  async writeInactive(image: VerifiedImage): Promise<void> {
    const { env, state } = await this.read();
    if (state.trial) {
      throw new SlotError('bootloader-error', `slot ${state.booted} is on an uncommitted trial; its fallback ${state.primary} must not be overwritten — commit or mark the trial bad first`);
    }
    // A trial armed earlier points at the slot we are about to overwrite: disarm it first, so a power
    // loss during the write can never boot a half-written image.
    if (this.scheme.armed(env, state)) await this.apply(env, this.scheme.revert(env, state), 'disarm');
    const target = otherSlot(state.booted);
    this.deps.logger?.info({ slot: target, device: this.config.slots[target].device, size: image.size }, 'writing inactive slot');
    await writeAndVerify(this.config.slots[target].device, image, this.runner);
  }

  async armTrial(): Promise<void> {
    const { env, state } = await this.read();
    if (state.trial) {
      throw new SlotError('bootloader-error', `slot ${state.booted} is already on an uncommitted trial; commit or mark it bad before arming another`);
    }
    await this.apply(env, this.scheme.arm(otherSlot(state.booted), state.booted), 'arm');
  }

  async markGood(): Promise<void> {
    const { env, state } = await this.read();
    await this.apply(env, this.scheme.commit(env, state), 'commit');
  }

  async markBad(): Promise<void> {
    const { env, state } = await this.read();
    await this.apply(env, this.scheme.revert(env, state), 'mark-bad');
  }

  async reboot(): Promise<void> {
    const [file, ...args] = this.config.rebootCommand as [string, ...string[]];
    const result = await this.runner(file, args, { timeoutMs: this.config.commandTimeoutMs });
    if (result.code !== 0) throw new SlotError('bootloader-error', `reboot failed: ${describeFailure(file, args, result)}`);
  }

  async readDurable(): Promise<string | null> {
    const value = (await this.env.read())[this.config.durableVariable];
    return value === undefined || value === '' ? null : value;
  }

  async writeDurable(record: string): Promise<void> {
    checkDurableRecord(record);
    // One variable in one fw_setenv batch: the environment's CRC (and its redundant copy) makes it
    // all or nothing; UbootEnv.write reads it back.
    const env = await this.env.read();
    await this.apply(env, { [this.config.durableVariable]: record }, 'durable-record');
  }

  private async read(): Promise<{ env: UbootVars; state: BootState }> {
    let env = await this.env.read();
    this.booted ??= await this.bootedFromCmdline();
    const state = this.scheme.bootState(env, this.booted);
    this.booted = state.booted;
    if (!this.confirmed && !state.trial) {
      // The agent runs, so this boot of the committed slot reached userspace: give it back the attempt
      // the BOOT_ORDER script spent (what rauc-mark-good.service does), once per boot. Without it the
      // committed slot would run out after `attempts` boots and U-Boot would switch slots by itself.
      // Nothing to do in the bootcount scheme, which counts only trials.
      this.confirmed = true;
      const batch = this.scheme.commit(env, state);
      await this.apply(env, batch, 'confirm-boot');
      env = { ...env, ...batch };
    }
    return { env, state };
  }

  private async apply(env: UbootVars, batch: UbootVars, step: string): Promise<void> {
    // Idempotent steps write nothing when the environment already says so (saves flash wear).
    if (Object.entries(batch).every(([name, value]) => (env[name] ?? '') === value)) return;
    this.deps.logger?.info({ step, vars: batch }, 'writing U-Boot environment');
    await this.env.write(batch);
  }

  private async bootedFromCmdline(): Promise<SlotName | undefined> {
    const markers: Record<SlotName, string | undefined> = {
      A: this.config.slots.A.cmdline ?? (this.config.scheme === 'boot-order' ? `rauc.slot=${this.config.slots.A.bootname ?? 'A'}` : undefined),
      B: this.config.slots.B.cmdline ?? (this.config.scheme === 'boot-order' ? `rauc.slot=${this.config.slots.B.bootname ?? 'B'}` : undefined),
    };
    if (markers.A === undefined || markers.B === undefined) return undefined;
    const words = (await readFile(this.config.procCmdline, 'utf8').catch((err: unknown) => {
      throw new SlotError('bootloader-error', `cannot read ${this.config.procCmdline} to learn the booted slot: ${errorMessage(err)}`);
    })).split(/\s+/);
    if (words.includes(markers.A)) return 'A';
    if (words.includes(markers.B)) return 'B';
    throw new SlotError(
      'bootloader-error',
      `the kernel command line has neither ${markers.A} nor ${markers.B}; make the U-Boot script pass the slot (see agent/slots/README.md)`,
    );
  }
}

/** Parses the config and builds the backend. */
export function createUbootBackend(config: z.input<typeof UbootBackendConfigSchema>, deps: SlotBackendDeps = {}): UbootSlotBackend {
  const parsed = parseValue(UbootBackendConfigSchema, config, 'uboot slot backend config');
  if (!parsed.ok) throw new ConfigError(`slots: ${parsed.error.message}`);
  return new UbootSlotBackend(parsed.value, deps);
}
