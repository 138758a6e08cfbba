/**
 * A simulated device: one slot backend with a simulated bootloader, one state store, and the Agent
 * re-created at every boot. I/O shell for tests, demos (`fleet agent start` with the file backend)
 * and the simulator.
 *
 * The reboot flow, explicitly: the agent's `reboot` effect saves its state (clean shutdown), ends its
 * MQTT session and calls `slots.reboot()` then `onReboot`. Here `onReboot` schedules a power cycle
 * (never awaited inside the agent's own event queue): the old Agent is stopped, the bootloader
 * "powers on" (`powerOn()` picks the trial or the primary slot), `bootOutcome` decides whether the
 * booted firmware comes up (a bricked or boot-looping image resets before the agent runs, and the
 * bootloader decides again), and a new Agent is created on the same store and started.
 */
import { systemClock, type Clock, type TimerHandle } from '@fleet/protocol/clock';
import type { BootState, SlotBackend } from './slots/slot-backend.js';
import { Agent, type AgentOptions } from './agent.js';
import { errorMessage } from '@fleet/protocol/errors';

/** A slot backend whose bootloader can be powered on by the harness (the file backend, the simulator's). */
export interface PowerableSlotBackend extends SlotBackend {
  powerOn(): unknown;
}

/** `up`: the firmware boots and the agent starts; `reset`: it dies during boot (watchdog reset). */
export type BootOutcome = 'up' | 'reset';

export interface SimulatedDeviceOptions extends Omit<AgentOptions, 'slots' | 'onReboot'> {
  slots: PowerableSlotBackend;
  /** Default: every boot comes up. */
  bootOutcome?: (boot: BootState) => BootOutcome | Promise<BootOutcome>;
  /** Called with each new Agent (after start). */
  onAgent?: (agent: Agent) => void;
  /** Resets in a row before the harness gives up (a device with no bootable slot). Default 8. */
  maxResets?: number;
  /**
   * Hardware watchdog for trial boots: a trial still uncommitted this long after it booted (the agent
   * hung, or never started its checks) is reset, and the bootloader falls back. Default: the config's
   * trial window plus one minute. Measured on `clock`.
   */
  trialWatchdogMs?: number;
  /**
   * A power cycle that could not boot the agent (its state or the bootloader unreadable): the device
   * is down until something powers it on again. Default: logged.
   */
  onBootFailed?: (err: unknown) => void;
}

export class SimulatedDevice {
  private current: Agent | null = null;
  private cycling: Promise<void> | null = null;
  private stopped = false;
  private watchdog: TimerHandle | null = null;
  /** Power-ons so far (including resets). */
  powerOns = 0;
  /** Set when no slot came up within maxResets: the device would be bricked. */
  bricked = false;

  constructor(private readonly options: SimulatedDeviceOptions) {}

  /** The running agent (null while powered off or bricked). */
  get agent(): Agent | null {
    return this.current;
  }

  /** Boots the device as it is now (no power-on: the bootloader state is taken as booted). */
  async start(): Promise<void> {
    await this.launch();
  }

  /**
   * Power cycle: stop (or kill) the agent, power on, start a new agent. A cycle requested while one
   * is under way (a power cut during the boot) runs after it.
   */
  powerCycle(options: { clean?: boolean } = {}): Promise<void> {
    const clean = options.clean ?? true;
    const previous = this.cycling ?? Promise.resolve();
    const next: Promise<void> = previous
      .then(() => this.doCycle(clean))
      .finally(() => {
        if (this.cycling === next) this.cycling = null;
      });
    this.cycling = next;
    return next;
  }

  /** Resolves once a power cycle in progress (e.g. after the agent's reboot) has finished. */
  async settled(): Promise<void> {
    while (this.cycling) await this.cycling;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.disarmWatchdog();
    await this.settled();
    const agent = this.current;
    this.current = null;
    await agent?.stop();
  }

  /** Power cut without a reboot request: the agent dies where it stands (no state write). */
  async powerLoss(): Promise<void> {
    await this.powerCycle({ clean: false });
  }

  private async doCycle(clean: boolean): Promise<void> {
    this.disarmWatchdog();
    const agent = this.current;
    this.current = null;
    if (agent) await (clean ? agent.stop() : agent.kill());
    if (this.stopped) return;
    const max = this.options.maxResets ?? 8;
    for (let i = 0; i < max; i++) {
      await this.options.slots.powerOn();
      this.powerOns++;
      const boot = await this.options.slots.bootState();
      const outcome = (await this.options.bootOutcome?.(boot)) ?? 'up';
      if (outcome === 'up') {
        await this.launch();
        return;
      }
    }
    this.bricked = true;
  }

  private async launch(): Promise<void> {
    if (this.stopped) return;
    const agent = await Agent.create({
      ...this.options,
      slots: this.options.slots,
      // Never awaited inside the agent's queue: the cycle waits for that queue to drain. Only the
      // running agent may reboot the device: one killed by a power cut (whose shutdown was still in
      // flight) must not cut the boot that replaced it, e.g. spend that boot's one-shot trial.
      onReboot: () => {
        if (this.current !== agent) return;
        queueMicrotask(() => void this.powerCycle().catch((err: unknown) => this.bootFailed(err)));
      },
    });
    this.current = agent;
    await agent.start();
    this.options.onAgent?.(agent);
    if ((await this.options.slots.bootState()).trial) this.armWatchdog();
  }

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  private armWatchdog(): void {
    const ms = this.options.trialWatchdogMs ?? this.options.config.health.trialWindow + 60_000;
    this.watchdog = this.clock.setTimeout(() => {
      this.watchdog = null;
      this.options.slots
        .bootState()
        .then((boot) => (boot.trial && !this.stopped ? this.powerCycle({ clean: false }) : undefined))
        .catch((err: unknown) => this.bootFailed(err));
    }, ms);
  }

  private bootFailed(err: unknown): void {
    if (this.options.onBootFailed) this.options.onBootFailed(err);
    else this.options.logger?.error({ err: errorMessage(err) }, 'power cycle failed; the device stays down');
  }

  private disarmWatchdog(): void {
    if (this.watchdog) this.clock.clearTimeout(this.watchdog);
    this.watchdog = null;
  }
}
