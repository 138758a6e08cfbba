/**
 * Talking to RAUC: `rauc status --output-format=json` and `rauc info` through the CLI, install and mark
 * through RAUC's D-Bus API (de.pengutronix.rauc.Installer, via dbus-next) or the CLI. Both clients follow
 * install progress and bound every wait. I/O adapter; the zod schemas parse everything RAUC prints.
 */
import type { ClientInterface, Variant } from 'dbus-next';
import { z } from 'zod';
import type { Clock } from '@fleet/protocol/clock';
import { parsePayload } from '@fleet/protocol/parse';
import type { CommandRunner } from './command-runner.js';
import { describeFailure } from './command-runner.js';
import { SlotError } from './slot-backend.js';
import { errorMessage } from '@fleet/protocol/errors';
import { definedProps } from '@fleet/firmware/defined-props';

const RaucSlotSchema = z.looseObject({
  class: z.string(),
  device: z.string(),
  type: z.string(),
  bootname: z.string().nullable().optional(),
  state: z.string(),
  parent: z.string().nullable().optional(),
  boot_status: z.string().optional(),
  slot_status: z
    .looseObject({
      checksum: z.looseObject({ sha256: z.string(), size: z.number() }).optional(),
      status: z.string().optional(),
    })
    .optional(),
});
export type RaucSlot = z.infer<typeof RaucSlotSchema>;

/** `rauc status --output-format=json` (RAUC 1.8). */
export const RaucStatusSchema = z.looseObject({
  compatible: z.string(),
  booted: z.string(),
  boot_primary: z.string().nullable(),
  slots: z.array(z.record(z.string(), RaucSlotSchema)),
});
export type RaucStatus = z.infer<typeof RaucStatusSchema>;

/** `rauc info --output-format=json <bundle>` (RAUC 1.8). */
export const RaucBundleInfoSchema = z.looseObject({
  compatible: z.string(),
  version: z.string().nullable(),
  images: z.array(z.record(z.string(), z.looseObject({ filename: z.string(), checksum: z.string(), size: z.number() }))),
});
export type RaucBundleInfo = z.infer<typeof RaucBundleInfoSchema>;

export interface RaucProgress {
  percent: number;
  message: string;
}

export type RaucMarkState = 'good' | 'bad' | 'active';

export interface RaucClientOptions {
  runner: CommandRunner;
  clock: Clock;
  /** Default `rauc`. */
  rauc: string;
  /** `rauc -c`; undefined uses RAUC's default system.conf. */
  systemConf: string | undefined;
  /** `system` (a real device) or `session` (tests: a private dbus-daemon). */
  bus: 'system' | 'session';
  /** Bus address for a session bus, e.g. unix:path=/tmp/bus. */
  busAddress: string | undefined;
  transport: 'dbus' | 'cli';
  installTimeoutMs: number;
  commandTimeoutMs: number;
}

export class RaucClient {
  constructor(private readonly o: RaucClientOptions) {}

  /** Environment for the rauc CLI, which itself talks to the service over D-Bus. */
  private get env(): Record<string, string> {
    if (this.o.bus === 'system') return {};
    return {
      DBUS_STARTER_BUS_TYPE: 'session',
      ...(this.o.busAddress ? { DBUS_SESSION_BUS_ADDRESS: this.o.busAddress, DBUS_STARTER_ADDRESS: this.o.busAddress } : {}),
    };
  }

  private async cli(args: string[], timeoutMs = this.o.commandTimeoutMs, onOutput?: (chunk: string) => void): Promise<string> {
    const full = [...(this.o.systemConf ? ['-c', this.o.systemConf] : []), ...args];
    const result = await this.o.runner(this.o.rauc, full, { env: this.env, timeoutMs, ...definedProps({ onOutput }) });
    if (result.code !== 0) throw new SlotError('bootloader-error', `RAUC failed: ${describeFailure(this.o.rauc, full, result)}`);
    return result.stdout;
  }

  async status(): Promise<RaucStatus> {
    const out = await this.cli(['status', '--output-format=json', '--detailed']);
    // rauc may print log lines before the JSON document.
    const json = out.slice(out.indexOf('{'));
    const parsed = parsePayload(RaucStatusSchema, json, 'rauc status output');
    if (!parsed.ok) throw new SlotError('bootloader-error', parsed.error.message);
    return parsed.value;
  }

  /** Verifies the bundle's signature against RAUC's keyring and lists its images. */
  async info(bundle: string): Promise<RaucBundleInfo> {
    const out = await this.cli(['info', '--output-format=json', bundle]).catch((err: unknown) => {
      throw new SlotError('write-failed', `RAUC refused bundle ${bundle} (signature, keyring or format): ${errorMessage(err)}`, { cause: err });
    });
    const parsed = parsePayload(RaucBundleInfoSchema, out.slice(out.indexOf('{')), 'rauc info output');
    if (!parsed.ok) throw new SlotError('write-failed', parsed.error.message);
    return parsed.value;
  }

  async mark(state: RaucMarkState, slot: string): Promise<void> {
    if (this.o.transport === 'cli') {
      await this.cli(['status', `mark-${state}`, slot]);
      return;
    }
    await this.withInstaller(async (installer, _props, guard) => {
      await guard((installer.Mark as (s: string, t: string) => Promise<unknown>)(state, slot), this.o.commandTimeoutMs, `Mark(${state}, ${slot})`);
    });
  }

  /** Installs a bundle and resolves when RAUC reports success; `onProgress` sees every step. */
  async install(bundle: string, onProgress: (p: RaucProgress) => void): Promise<void> {
    if (this.o.transport === 'cli') {
      let partial = '';
      await this.cli(['install', bundle], this.o.installTimeoutMs, (chunk) => {
        partial += chunk;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const m = /^\s*(\d{1,3})%\s+(.*)$/.exec(line);
          if (m) onProgress({ percent: Number(m[1]), message: m[2]!.trim() });
        }
      }).catch((err: unknown) => {
        throw new SlotError('write-failed', `RAUC install of ${bundle} failed: ${errorMessage(err)}`, { cause: err });
      });
      return;
    }
    await this.withInstaller(async (installer, props, guard) => {
      const onChanged = (iface: string, changed: Record<string, Variant>): void => {
        const progress = changed.Progress?.value as [number, string, number] | undefined;
        if (iface === 'de.pengutronix.rauc.Installer' && progress) onProgress({ percent: progress[0], message: progress[1] });
      };
      props.on('PropertiesChanged', onChanged);
      let onCompleted: ((code: number) => void) | undefined;
      const completed = new Promise<number>((resolve) => {
        onCompleted = resolve;
        installer.on('Completed', resolve);
      });
      const timer = { handle: undefined as ReturnType<Clock['setTimeout']> | undefined };
      const timeout = new Promise<'timeout'>((resolve) => {
        timer.handle = this.o.clock.setTimeout(() => resolve('timeout'), this.o.installTimeoutMs);
      });
      try {
        await guard((installer.InstallBundle as (s: string, a: Record<string, Variant>) => Promise<void>)(bundle, {}), this.o.commandTimeoutMs, 'InstallBundle');
        const code = await guard(Promise.race([completed, timeout]), this.o.installTimeoutMs + 1_000, 'Completed');
        if (code === 'timeout') {
          throw new SlotError('write-failed', `RAUC did not finish installing ${bundle} within ${this.o.installTimeoutMs} ms; check \`rauc status\` and the journal of rauc.service`);
        }
        if (code !== 0) {
          const lastError = (await guard((props.Get as (i: string, p: string) => Promise<Variant>)('de.pengutronix.rauc.Installer', 'LastError'), this.o.commandTimeoutMs, 'LastError')).value as string;
          throw new SlotError('write-failed', `RAUC install of ${bundle} failed (${code}): ${lastError}`);
        }
      } catch (err) {
        if (err instanceof SlotError) throw err;
        throw new SlotError('write-failed', `RAUC install of ${bundle} failed: ${errorMessage(err)}`, { cause: err });
      } finally {
        if (timer.handle) this.o.clock.clearTimeout(timer.handle);
        props.removeListener('PropertiesChanged', onChanged);
        if (onCompleted) installer.removeListener('Completed', onCompleted);
      }
    });
  }

  /**
   * One connection per call: the agent calls RAUC a handful of times per update. Every D-Bus wait is
   * bounded: dbus-next reports a dead socket only as an 'error' event and would otherwise wait forever.
   */
  private async withInstaller<T>(fn: (installer: ClientInterface, props: ClientInterface, guard: Guard) => Promise<T>): Promise<T> {
    // Loaded on first use, so importing this backend (e.g. for its config schema) costs nothing.
    const dbus = (await import('dbus-next')).default;
    const bus = this.o.bus === 'system' ? dbus.systemBus() : dbus.sessionBus(this.o.busAddress ? { busAddress: this.o.busAddress } : {});
    const timers: ReturnType<Clock['setTimeout']>[] = [];
    let failBus: (err: unknown) => void = () => undefined;
    const busFailed = new Promise<never>((_, reject) => {
      failBus = reject;
    });
    busFailed.catch(() => undefined); // observed through guard(); never an unhandled rejection
    bus.on('error', (err) => failBus(err));
    const guard: Guard = (promise, ms, what) =>
      Promise.race([
        promise,
        busFailed,
        new Promise<never>((_, reject) => {
          timers.push(this.o.clock.setTimeout(() => reject(new Error(`no answer to ${what} within ${ms} ms`)), ms));
        }),
      ]);
    try {
      const obj = await guard(bus.getProxyObject('de.pengutronix.rauc', '/'), this.o.commandTimeoutMs, 'connecting to de.pengutronix.rauc');
      return await fn(obj.getInterface('de.pengutronix.rauc.Installer'), obj.getInterface('org.freedesktop.DBus.Properties'), guard);
    } catch (err) {
      if (err instanceof SlotError) throw err;
      throw new SlotError('bootloader-error', `RAUC's D-Bus service is unreachable (${errorMessage(err)}); is rauc.service running?`, { cause: err });
    } finally {
      for (const t of timers) this.o.clock.clearTimeout(t);
      bus.disconnect();
    }
  }
}

/** Races a D-Bus call against a lost connection and a deadline. */
type Guard = <T>(promise: Promise<T>, ms: number, what: string) => Promise<T>;
