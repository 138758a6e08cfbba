/**
 * Where devices' broker accounts live. The embedded broker reads the coordinator's credential store
 * at every login, so it needs nothing pushed, only the connections a rotation or revocation ended
 * closed; an external Mosquitto keeps its own accounts, which the coordinator manages through the
 * dynamic-security plugin (dynsec-accounts.ts). Interface and the embedded implementation.
 */
import type { DeviceAccount } from './dynsec-plan.js';
import type { BrokerUptimeListener } from './dynsec-control.js';

export type { DeviceAccount };

/** What a start-up reconciliation found and did (counted and logged by the caller). */
export interface ReconcileReport {
  /** Devices compared. */
  devices: number;
  /** Created without a secret (the coordinator keeps only hashes): each needs `fleet devices provision --rotate`. */
  created: string[];
  /** Revoked here and enabled on the broker: disabled. */
  disabled: string[];
  /** Role, client id, extra roles or enabled state corrected. */
  corrected: string[];
  /** Accounts holding the device role of a device this coordinator does not know: disabled. */
  unknownDisabled: string[];
  /** The broker's default access was not deny for publishing, receiving and subscribing: set to deny. */
  defaultAccessFixed: boolean;
  /** Commands that changed something. */
  changes: number;
}

export interface BrokerAccounts {
  readonly kind: 'embedded' | 'none' | 'mosquitto-dynsec';
  start(): Promise<void>;
  /**
   * Before the store changes: makes the broker hold these accounts (a new secret where given, the
   * role for the model, enabled or not). Rejects, naming what to fix, when the broker did not confirm;
   * provisioning then stores nothing.
   */
  push(accounts: readonly DeviceAccount[]): Promise<void>;
  /** After the store changed: closes the connections that a new secret or a revocation ended. */
  enforce(accounts: readonly DeviceAccount[]): void;
  /** Brings every account in line with the store (idempotent; nothing to do for the embedded broker). */
  reconcile(devices: readonly DeviceAccount[]): Promise<ReconcileReport>;
  /** Called whenever the broker is back after a loss (it may have missed changes meanwhile). */
  onReturn(listener: () => void): void;
  /**
   * Called when the broker restarted (with how long ago, ms): every device was disconnected then,
   * and a killed broker sends no last wills; and with the first uptime this process hears. Never for
   * the embedded broker (its disconnects are seen).
   */
  onRestart(listener: BrokerUptimeListener): void;
  stop(): Promise<void>;
}

export function emptyReport(devices: number): ReconcileReport {
  return { devices, created: [], disabled: [], corrected: [], unknownDisabled: [], defaultAccessFixed: false, changes: 0 };
}

/**
 * Accounts that the coordinator's store alone holds: the embedded broker authenticates against it at
 * every login (and closes the sessions a change ended); another external broker (`none`) is the
 * operator's to configure with the same secrets.
 */
export class StoreOnlyAccounts implements BrokerAccounts {
  constructor(
    readonly kind: 'embedded' | 'none',
    private readonly disconnect: (deviceId: string) => void = () => undefined,
  ) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  push(): Promise<void> {
    return Promise.resolve();
  }

  enforce(accounts: readonly DeviceAccount[]): void {
    // A session authenticated with the old secret (or any, once revoked) must not outlive it.
    for (const a of accounts) if (a.secret !== undefined || !a.enabled) this.disconnect(a.deviceId);
  }

  reconcile(devices: readonly DeviceAccount[]): Promise<ReconcileReport> {
    return Promise.resolve(emptyReport(devices.length));
  }

  onReturn(): void {
    // In-process: never away.
  }

  onRestart(): void {
    // In-process: its restarts are the coordinator's own.
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
