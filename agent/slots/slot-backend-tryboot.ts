/**
 * The `tryboot` slot backend (Raspberry Pi 4/5 firmware): writes the inactive partition, arms a one-shot
 * trial with `reboot '0 tryboot'`, learns from the device tree whether this boot is a trial and which
 * partition booted, and commits by rewriting autoboot.txt. A failed trial leaves autoboot.txt alone: the
 * next ordinary reboot (or any crash) boots the committed partition. I/O shell.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { parseValue } from '@fleet/protocol/parse';
import type { SlotName } from '@fleet/protocol/update-state';
import { otherSlot } from '@fleet/protocol/update-state';
import { autobootValue, parseAutoboot, readDtInteger, renderAutoboot, withPartitions, writeAutoboot } from './autoboot-txt.js';
import type { CommandRunner, SlotBackendDeps } from './command-runner.js';
import { describeFailure, spawnRunner } from './command-runner.js';
import { writeAndVerify } from './partition-writer.js';
import type { BootState, SlotBackend, VerifiedImage } from './slot-backend.js';
import { SlotError, checkDurableRecord } from './slot-backend.js';
import { DurableCopies } from './durable-copies.js';

const TrybootSlotSchema = z.object({
  /** Partition device the image is written to, e.g. /dev/mmcblk0p2. */
  device: z.string().min(1),
  /** Partition number the firmware knows it by. Default A: 2, B: 3. */
  partition: z.number().int().min(1).max(127).optional(),
});

/** Agent config of the `tryboot` backend. */
export const TrybootBackendConfigSchema = z
  .object({
    kind: z.literal('tryboot'),
    /** Where the FAT boot partition is mounted (read-write). Default /boot/firmware. */
    bootDir: z.string().min(1).default('/boot/firmware'),
    autobootFile: z.string().min(1).default('autoboot.txt'),
    /**
     * The agent's durable record on the boot partition, relative to bootDir: two copies written in
     * turn (`<name>.0`, `<name>.1`), since FAT has no atomic rename. Default fleet-durable.
     */
    durableFile: z.string().min(1).default('fleet-durable'),
    /** Default /proc/device-tree. */
    deviceTreeRoot: z.string().min(1).default('/proc/device-tree'),
    slots: z.object({ A: TrybootSlotSchema, B: TrybootSlotSchema }),
    /** argv of the one-shot trial reboot. Default ["reboot", "0 tryboot"] (one quoted argument). */
    trybootRebootCommand: z.array(z.string().min(1)).min(1).default(['reboot', '0 tryboot']),
    /** argv of an ordinary reboot. Default ["reboot"]. */
    rebootCommand: z.array(z.string().min(1)).min(1).default(['reboot']),
    /**
     * Marks "trial armed" until the next boot; keep it on a tmpfs that a boot clears, so an agent
     * restarted between arming and rebooting still reboots into the trial. Default /run/fleet/tryboot-armed.
     */
    armedMarker: z.string().min(1).default('/run/fleet/tryboot-armed'),
    commandTimeoutMs: z.number().int().positive().default(30_000),
  })
  .refine((c) => c.slots.A.device !== c.slots.B.device, { message: 'slots.A.device and slots.B.device must differ', path: ['slots'] })
  .refine((c) => (c.slots.A.partition ?? 2) !== (c.slots.B.partition ?? 3), { message: 'slots.A.partition and slots.B.partition must differ', path: ['slots'] });

export type TrybootBackendConfig = z.infer<typeof TrybootBackendConfigSchema>;

export class TrybootSlotBackend implements SlotBackend {
  readonly kind = 'tryboot' as const;
  private readonly runner: CommandRunner;
  private readonly partitions: Record<SlotName, number>;
  private readonly durable: DurableCopies;

  constructor(
    private readonly config: TrybootBackendConfig,
    private readonly deps: SlotBackendDeps = {},
  ) {
    this.runner = deps.runner ?? spawnRunner;
    this.partitions = { A: config.slots.A.partition ?? 2, B: config.slots.B.partition ?? 3 };
    this.durable = new DurableCopies(join(config.bootDir, config.durableFile));
  }

  private get autobootPath(): string {
    return join(this.config.bootDir, this.config.autobootFile);
  }

  async bootState(): Promise<BootState> {
    const dt = join(this.config.deviceTreeRoot, 'chosen', 'bootloader');
    const partition = await readDtInteger(join(dt, 'partition'));
    if (partition === undefined) {
      throw new SlotError('not-supported', `${dt}/partition is missing: this is not a Raspberry Pi with tryboot-capable firmware (update the bootloader EEPROM)`);
    }
    const booted = this.slotFor(partition, `${dt}/partition`);
    const primary = this.slotFor(Number(autobootValue(await this.readAutoboot(), 'all', 'boot_partition')), `[all] boot_partition in ${this.autobootPath}`);
    return { booted, primary, trial: booted !== primary };
  }

  async writeInactive(image: VerifiedImage): Promise<void> {
    const state = await this.bootState();
    if (state.trial) {
      throw new SlotError('bootloader-error', `slot ${state.booted} is on an uncommitted trial; its fallback ${state.primary} must not be overwritten — commit or mark the trial bad first`);
    }
    // A stale arm would reboot into the half-written slot: drop it before touching the partition.
    await rm(this.config.armedMarker, { force: true });
    const target = otherSlot(state.booted);
    this.deps.logger?.info({ slot: target, device: this.config.slots[target].device, size: image.size }, 'writing inactive slot');
    await writeAndVerify(this.config.slots[target].device, image, this.runner);
  }

  async armTrial(): Promise<void> {
    const state = await this.bootState();
    if (state.trial) throw new SlotError('bootloader-error', `slot ${state.booted} is already on an uncommitted trial; commit or mark it bad before arming another`);
    const autoboot = await this.readAutoboot();
    const target = this.partitions[otherSlot(state.booted)];
    if (autobootValue(autoboot, 'tryboot', 'boot_partition') !== String(target) || autobootValue(autoboot, 'all', 'tryboot_a_b') !== '1') {
      await writeAutoboot(this.autobootPath, renderAutoboot(withPartitions(autoboot, this.partitions[state.booted], target)));
    }
    await mkdir(dirname(this.config.armedMarker), { recursive: true });
    await writeFile(this.config.armedMarker, `${otherSlot(state.booted)}\n`);
  }

  async markGood(): Promise<void> {
    const state = await this.bootState();
    if (!state.trial) return;
    const text = renderAutoboot(withPartitions(await this.readAutoboot(), this.partitions[state.booted], this.partitions[state.primary]));
    this.deps.logger?.info({ slot: state.booted }, 'committing trial in autoboot.txt');
    await writeAutoboot(this.autobootPath, text);
  }

  async markBad(): Promise<void> {
    // autoboot.txt still names the committed partition; only make sure the next reboot is ordinary.
    await rm(this.config.armedMarker, { force: true });
  }

  async reboot(): Promise<void> {
    const armed = await readFile(this.config.armedMarker, 'utf8').then(
      () => true,
      () => false,
    );
    const [file, ...args] = (armed ? this.config.trybootRebootCommand : this.config.rebootCommand) as [string, ...string[]];
    this.deps.logger?.info({ tryboot: armed }, 'rebooting');
    const result = await this.runner(file, args, { timeoutMs: this.config.commandTimeoutMs });
    if (result.code !== 0) throw new SlotError('bootloader-error', `reboot failed: ${describeFailure(file, args, result)}`);
  }

  readDurable(): Promise<string | null> {
    return this.durable.read();
  }

  async writeDurable(record: string): Promise<void> {
    checkDurableRecord(record);
    await this.durable.write(record);
  }

  private async readAutoboot(): Promise<ReturnType<typeof parseAutoboot>> {
    const text = await readFile(this.autobootPath, 'utf8').catch((err: unknown) => {
      throw new SlotError('bootloader-error', `cannot read ${this.autobootPath} (${errorMessage(err)}); mount the boot partition and create it (see agent/slots/README.md)`);
    });
    return parseAutoboot(text);
  }

  private slotFor(partition: number, what: string): SlotName {
    if (partition === this.partitions.A) return 'A';
    if (partition === this.partitions.B) return 'B';
    throw new SlotError('bootloader-error', `${what} is ${partition}, which is neither slot (A=${this.partitions.A}, B=${this.partitions.B}); fix the agent config or autoboot.txt`);
  }
}

/** Parses the config and builds the backend. */
export function createTrybootBackend(config: z.input<typeof TrybootBackendConfigSchema>, deps: SlotBackendDeps = {}): TrybootSlotBackend {
  const parsed = parseValue(TrybootBackendConfigSchema, config, 'tryboot slot backend config');
  if (!parsed.ok) throw new ConfigError(`slots: ${parsed.error.message}`);
  return new TrybootSlotBackend(parsed.value, deps);
}
