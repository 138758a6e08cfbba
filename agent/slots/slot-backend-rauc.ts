/**
 * The `rauc` slot backend: RAUC does the writing. The manifest's artifact is a signed RAUC bundle; we
 * check it is the file the signed manifest named (sha256), let RAUC check its own signature (`rauc
 * info`), install it through RAUC's D-Bus API (or the CLI) while following progress, verify what RAUC
 * wrote, and drive the trial with `mark-active` / `mark-good` / `mark-bad`. I/O shell.
 *
 * RAUC has no notion of an uncommitted trial, so a tiny state file records which slot is committed and
 * which is on trial. system.conf must say `activate-installed=false`, so an install never changes the
 * boot order by itself (the backend restores it, with a warning, if RAUC did).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { Clock } from '@fleet/protocol/clock';
import { systemClock } from '@fleet/protocol/clock';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import { parsePayload, parseValue } from '@fleet/protocol/parse';
import type { SlotName } from '@fleet/protocol/update-state';
import { SlotNameSchema, otherSlot } from '@fleet/protocol/update-state';
import { writeFileAtomic } from '../state-store.js';
import { sha256OfFile } from '../file-passes.js';
import type { SlotBackendDeps } from './command-runner.js';
import { describeFailure, spawnRunner } from './command-runner.js';
import { sha256Prefix } from './partition-writer.js';
import type { RaucBundleInfo, RaucProgress, RaucSlot, RaucStatus } from './rauc-client.js';
import { RaucClient } from './rauc-client.js';
import type { BootState, SlotBackend, VerifiedImage } from './slot-backend.js';
import { SlotError, checkDurableRecord } from './slot-backend.js';
import { DurableCopies } from './durable-copies.js';

/** Agent config of the `rauc` backend. */
export const RaucBackendConfigSchema = z.object({
  kind: z.literal('rauc'),
  /** Default `rauc`. */
  rauc: z.string().min(1).default('rauc'),
  /** `rauc -c <file>`; omit for RAUC's default (/etc/rauc/system.conf). */
  systemConf: z.string().min(1).optional(),
  /** Install and mark through D-Bus (default) or the rauc CLI. Status always comes from the CLI. */
  transport: z.enum(['dbus', 'cli']).default('dbus'),
  /** `system` on a device; `session` for a private bus (tests). */
  bus: z.enum(['system', 'session']).default('system'),
  /** Session bus address, e.g. unix:path=/run/test-bus. */
  busAddress: z.string().min(1).optional(),
  /** RAUC bootname of each slot (system.conf `bootname=`). Default A / B. */
  bootnames: z.object({ A: z.string().min(1).default('A'), B: z.string().min(1).default('B') }).prefault({}),
  /** Which slot is committed and which is on trial; keep it on persistent storage. */
  stateFile: z.string().min(1).default('/var/lib/fleet/rauc-trial.json'),
  /**
   * The agent's durable record (two copies, `<durableFile>.0` and `.1`). Default: fleet-durable beside
   * stateFile. Keep it outside the agent's dataDir, e.g. on the boot partition.
   */
  durableFile: z.string().min(1).optional(),
  /** argv of a reboot. Default ["reboot"]. */
  rebootCommand: z.array(z.string().min(1)).min(1).default(['reboot']),
  /** Default 30 minutes. */
  installTimeoutMs: z.number().int().positive().default(30 * 60_000),
  commandTimeoutMs: z.number().int().positive().default(60_000),
});
export type RaucBackendConfig = z.infer<typeof RaucBackendConfigSchema>;

const TrialStateSchema = z.object({ committed: SlotNameSchema, trial: SlotNameSchema.nullable() });
type TrialState = z.infer<typeof TrialStateSchema>;

export interface RaucBackendDeps extends SlotBackendDeps {
  /** Bounds the install wait. Default systemClock. */
  clock?: Clock;
  /** Every progress step RAUC reports during an install. */
  onProgress?: (progress: RaucProgress) => void;
}

export class RaucSlotBackend implements SlotBackend {
  readonly kind = 'rauc' as const;
  private readonly client: RaucClient;
  /** The committed slot's boot was confirmed to RAUC in this process. */
  private confirmed = false;
  private readonly durable: DurableCopies;

  constructor(
    private readonly config: RaucBackendConfig,
    private readonly deps: RaucBackendDeps = {},
  ) {
    this.durable = new DurableCopies(config.durableFile ?? join(dirname(config.stateFile), 'fleet-durable'));
    this.client = new RaucClient({
      runner: deps.runner ?? spawnRunner,
      clock: deps.clock ?? systemClock,
      rauc: config.rauc,
      systemConf: config.systemConf,
      bus: config.bus,
      busAddress: config.busAddress,
      transport: config.transport,
      installTimeoutMs: config.installTimeoutMs,
      commandTimeoutMs: config.commandTimeoutMs,
    });
  }

  async bootState(): Promise<BootState> {
    return (await this.read()).state;
  }

  async writeInactive(image: VerifiedImage): Promise<void> {
    const { state, armed } = await this.read();
    if (state.trial) {
      throw new SlotError('bootloader-error', `slot ${state.booted} is on an uncommitted trial; its fallback ${state.primary} must not be overwritten — commit or mark the trial bad first`);
    }
    if (armed) await this.disarm(state.booted);
    const { sha256: actual } = await sha256OfFile(image.path).catch((err: unknown) => {
      throw new SlotError('write-failed', `cannot read bundle ${image.path}: ${errorMessage(err)}`, { cause: err });
    });
    if (actual !== image.sha256.toLowerCase()) {
      throw new SlotError('readback-failed', `bundle ${image.path} has sha256 ${actual}, but the signed manifest says ${image.sha256}; it changed after verification — download it again`);
    }
    const info = await this.client.info(image.path);
    const target = otherSlot(state.booted);
    this.deps.logger?.info({ slot: target, bundle: image.path, version: info.version }, 'installing RAUC bundle');
    await this.client.install(image.path, (p) => {
      this.deps.logger?.debug({ percent: p.percent, step: p.message }, 'RAUC install progress');
      this.deps.onProgress?.(p);
    });
    const status = await this.client.status();
    if (this.primaryOf(status) !== state.booted) {
      this.deps.logger?.warn({ slot: target }, 'RAUC activated the installed slot; set activate-installed=false in system.conf');
      await this.client.mark('active', 'booted');
    }
    await this.verifyInstalled(status, info, target);
  }

  async armTrial(): Promise<void> {
    const { state } = await this.read();
    if (state.trial) throw new SlotError('bootloader-error', `slot ${state.booted} is already on an uncommitted trial; commit or mark it bad before arming another`);
    // RAUC records status=ok only after a complete install; a failed or interrupted one must not boot.
    const target = this.config.bootnames[otherSlot(state.booted)];
    const installed = (await this.client.status()).slots.flatMap((e) => Object.values(e)).find((s) => s.bootname === target)?.slot_status?.status;
    if (installed !== undefined && installed !== 'ok') {
      throw new SlotError('bootloader-error', `RAUC reports the last install into slot ${target} as ${JSON.stringify(installed)}; install the bundle again before arming it`);
    }
    // The record first: a power loss before RAUC switches leaves "trial pending" while A still boots,
    // which reads as a trial that returned to the primary.
    await this.writeTrialState({ committed: state.booted, trial: otherSlot(state.booted) });
    await this.client.mark('active', 'other');
  }

  async markGood(): Promise<void> {
    const { state } = await this.read();
    // Outside a trial this is RAUC's usual mark-good after a healthy boot (its attempts come back).
    await this.client.mark('good', 'booted');
    if (!state.trial) return;
    await this.client.mark('active', 'booted');
    await this.writeTrialState({ committed: state.booted, trial: null });
  }

  async markBad(): Promise<void> {
    const { state, armed } = await this.read();
    if (state.trial) await this.client.mark('bad', 'booted');
    else if (armed) await this.disarm(state.booted);
  }

  async reboot(): Promise<void> {
    const [file, ...args] = this.config.rebootCommand as [string, ...string[]];
    const result = await (this.deps.runner ?? spawnRunner)(file, args, { timeoutMs: this.config.commandTimeoutMs });
    if (result.code !== 0) throw new SlotError('bootloader-error', `reboot failed: ${describeFailure(file, args, result)}`);
  }

  readDurable(): Promise<string | null> {
    return this.durable.read();
  }

  async writeDurable(record: string): Promise<void> {
    checkDurableRecord(record);
    await this.durable.write(record);
  }

  private async read(): Promise<{ state: BootState; armed: boolean }> {
    const status = await this.client.status();
    const booted = this.slotForBootname(status.booted, 'the booted slot');
    const trialState = await this.readTrialState();
    const raucPrimary = this.primaryOf(status);
    const pending = trialState?.trial != null && trialState.trial !== trialState.committed;
    // While a trial is pending or running the committed slot is the primary, whatever RAUC's boot order
    // says; otherwise it is what RAUC boots by default — except that the booted slot on its last attempt
    // (RAUC reports it bad until the next mark-good gives the attempts back) is still the primary.
    const bootedSlot = status.slots.flatMap((e) => Object.values(e)).find((s) => s.bootname === status.booted);
    const spent = bootedSlot?.boot_status === 'bad';
    const primary = pending ? trialState.committed : spent ? booted : (raucPrimary ?? booted);
    const state: BootState = { booted, primary, trial: booted !== primary };
    if (!this.confirmed && !state.trial) {
      // The agent runs, so this boot of the committed slot reached userspace: `mark-good booted` once per
      // boot gives back the attempt RAUC's boot script spent (rauc-mark-good.service does the same; do
      // not enable that service, it would also commit trials without our health checks).
      this.confirmed = true;
      await this.client.mark('good', 'booted').catch((err: unknown) => {
        this.deps.logger?.warn({ err }, 'could not mark the committed slot good after boot');
      });
    }
    return { state, armed: pending && !state.trial && raucPrimary === otherSlot(booted) };
  }

  private async disarm(booted: SlotName): Promise<void> {
    await this.client.mark('active', 'booted');
    await this.writeTrialState({ committed: booted, trial: null });
  }

  private primaryOf(status: RaucStatus): SlotName | undefined {
    if (!status.boot_primary) return undefined;
    const slot = this.slotByName(status, status.boot_primary);
    return slot?.bootname ? this.slotForBootname(slot.bootname, `RAUC's primary ${status.boot_primary}`) : undefined;
  }

  private slotByName(status: RaucStatus, name: string): RaucSlot | undefined {
    for (const entry of status.slots) if (entry[name]) return entry[name];
    return undefined;
  }

  private slotForBootname(bootname: string, what: string): SlotName {
    if (bootname === this.config.bootnames.A) return 'A';
    if (bootname === this.config.bootnames.B) return 'B';
    throw new SlotError('bootloader-error', `${what} has bootname ${JSON.stringify(bootname)}, neither ${this.config.bootnames.A} nor ${this.config.bootnames.B}; fix bootnames in the agent config`);
  }

  /** Checks every image of the bundle landed in the target slot group: RAUC's record, then raw read-back. */
  private async verifyInstalled(status: RaucStatus, info: RaucBundleInfo, target: SlotName): Promise<void> {
    const bootname = this.config.bootnames[target];
    for (const entry of info.images) {
      for (const [slotClass, image] of Object.entries(entry)) {
        const slotClassName = slotClass.split('.')[0]!;
        const match = status.slots
          .flatMap((e) => Object.entries(e))
          .find(([, s]) => s.class === slotClassName && (s.bootname === bootname || (s.parent ? this.slotByName(status, s.parent)?.bootname === bootname : false)));
        if (!match) throw new SlotError('readback-failed', `no ${slotClassName} slot with bootname ${bootname} in rauc status; check system.conf`);
        const [name, slot] = match;
        if (slot.slot_status?.checksum?.sha256 !== image.checksum) {
          throw new SlotError('readback-failed', `RAUC records ${name} as ${slot.slot_status?.checksum?.sha256 ?? 'unknown'}, expected ${image.checksum}; the slot was not armed`);
        }
        if (slot.type === 'raw') {
          const back = await sha256Prefix(slot.device, image.size).catch((err: unknown) => {
            throw new SlotError('readback-failed', `reading ${slot.device} back failed: ${errorMessage(err)}`, { cause: err });
          });
          if (back !== image.checksum) throw new SlotError('readback-failed', `${slot.device} reads back as ${back}, expected ${image.checksum}; the slot was not armed`);
        }
      }
    }
  }

  private async readTrialState(): Promise<TrialState | undefined> {
    let raw: Buffer;
    try {
      raw = await readFile(this.config.stateFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new SlotError('bootloader-error', `cannot read ${this.config.stateFile}: ${errorMessage(err)}`);
    }
    const parsed = parsePayload(TrialStateSchema, raw, this.config.stateFile);
    if (!parsed.ok) throw new SlotError('bootloader-error', `${parsed.error.message}; delete the file only when no update is in flight`);
    return parsed.value;
  }

  private async writeTrialState(state: TrialState): Promise<void> {
    await mkdir(dirname(this.config.stateFile), { recursive: true });
    await writeFileAtomic(this.config.stateFile, JSON.stringify(state));
  }
}

/** Parses the config and builds the backend. */
export function createRaucBackend(config: z.input<typeof RaucBackendConfigSchema>, deps: RaucBackendDeps = {}): RaucSlotBackend {
  const parsed = parseValue(RaucBackendConfigSchema, config, 'rauc slot backend config');
  if (!parsed.ok) throw new ConfigError(`slots: ${parsed.error.message}`);
  return new RaucSlotBackend(parsed.value, deps);
}
