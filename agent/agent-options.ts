/**
 * The Agent's options: its config and every injectable seam, each with a real default. Pure.
 */
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import type { RolloutMessage } from '@fleet/protocol/messages';
import type { TrustStore } from '@fleet/firmware/trust-store';
import type { AgentConfig } from './config.js';
import type { AgentState } from './agent-state.js';
import type { Downloader } from './downloader.js';
import type { HealthCheckRunner } from './health-checks.js';
import type { MqttConnect } from './mqtt-session.js';
import type { StateStore } from './state-store.js';
import type { SlotBackend } from './slots/slot-backend.js';
import type { TelemetryCollector } from './telemetry/collector.js';
import type { MachineConfig, UpdateEvent } from './update-types.js';

export interface AgentOptions {
  config: AgentConfig;
  /** Default: systemClock. */
  clock?: Clock;
  /** Default: pino at config.logLevel on stdout. */
  logger?: Logger;
  /** Default: mqtt.connect. */
  connect?: MqttConnect;
  /** Default: Linux /proc and /sys collectors, plus the configured script and log excerpt. */
  telemetry?: TelemetryCollector;
  /** Default: HttpDownloader (resumable HTTP/HTTPS). */
  downloader?: Downloader;
  /** Default: FileStateStore at <dataDir>/state.json. */
  store?: StateStore;
  /** Default: built from config.slots. */
  slots?: SlotBackend;
  /** Default: CommandHealthCheckRunner (config.health.checks). */
  healthChecks?: HealthCheckRunner;
  /** Default: loaded from config.trustStoreDir. */
  trust?: TrustStore;
  /** Default: Math.random (reconnect and retry jitter). */
  random?: () => number;
  /** Identifies the current boot. Default: the backend's bootId, else /proc/sys/kernel/random/boot_id. */
  bootId?: () => Promise<string>;
  /** Called after slots.reboot() returns (tests/simulator: stop this agent, power on, start a new one). */
  onReboot?: () => void | Promise<void>;
  /**
   * Called when slots.reboot() fails: the agent is shut down by then. The daemon exits non-zero so
   * systemd restarts it; the restarted agent re-arms and reboots (a bounded number of times).
   */
  onRebootFailed?: (err: unknown) => void | Promise<void>;
  /** Called after every state change (tests and the simulator observe progress here). */
  onStateChange?: (state: AgentState) => void;
  /** Default: true. The simulator may turn the periodic telemetry timer off and call sendTelemetry(). */
  telemetryTimer?: boolean;
}

/** What `dispatch` accepts: an update machine event, or a rollout message still to be verified. */
export type AgentEvent = UpdateEvent | { type: 'rollout-message'; message: RolloutMessage };

/** The update machine's knobs from the agent config. */
export function machineConfigOf(cfg: AgentConfig): MachineConfig {
  return {
    maxDownloadAttempts: cfg.download.maxAttempts,
    retryBaseMs: cfg.download.retryBase,
    retryMaxMs: cfg.download.retryMax,
    trialWindowMs: cfg.health.trialWindow,
    progressIntervalMs: cfg.download.progressInterval,
  };
}
