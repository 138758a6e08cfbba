/**
 * Provisioning, rotating and revoking a device, in the coordinator's store and on its broker together:
 * the one path that `POST /v1/devices/provision`, `DELETE /v1/devices/:id/credentials`, the simulator
 * and `fleet agent dev` take. Order matters and differs on purpose:
 *
 * - provision / rotate: new secrets are issued, the broker is told first (an external broker that
 *   does not confirm leaves nothing stored and no secret shown), then the hashes and the registry
 *   record are stored, then connections that held the old secret (or none) are closed;
 * - revoke: the store first (downloads and embedded logins are refused at once), then the broker;
 *   if the broker does not confirm, the operator is told and the next reconciliation disables it.
 *
 * A device whose model becomes known by its first hello has its broker role narrowed to that model.
 * I/O shell.
 */
import type { Logger } from 'pino';
import { errorMessage } from '@fleet/protocol/errors';
import type { Counters } from '../metrics.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import type { BrokerAccounts, DeviceAccount, ReconcileReport } from './broker-accounts.js';
import type { CredentialStore, ProvisionedDevice } from './credentials.js';
import { BrokerAccountsError, type BrokerUptimeListener } from './dynsec-control.js';

export interface DeviceAccountsDeps {
  credentials: CredentialStore;
  registry: DeviceRegistry;
  broker: BrokerAccounts;
  /** Clock time, for the registry's provisioning time. */
  now: () => number;
  counters: Counters;
  logger: Logger;
}

export interface ProvisionInfo {
  hardwareModel?: string;
  tags?: string[];
  rotate?: boolean;
}

/** At most this many ids in one log line. */
const LOGGED_IDS = 20;

export class DeviceAccounts {
  /** Devices whose broker role was set without a model: narrowed at their first hello. */
  private readonly unmodelled = new Set<string>();
  private reconciling: Promise<ReconcileReport> | undefined;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly deps: DeviceAccountsDeps) {}

  get brokerKind(): BrokerAccounts['kind'] {
    return this.deps.broker.kind;
  }

  /** Connects to the broker's account management and reconciles every account (throws when it cannot). */
  async start(): Promise<ReconcileReport> {
    const { broker, registry, logger } = this.deps;
    await broker.start();
    this.unsubscribe = registry.subscribe((d, change) => {
      if (change === 'hello' && d.hardwareModel !== undefined && this.unmodelled.has(d.deviceId)) this.modelKnown(d.deviceId, d.hardwareModel);
    });
    // Changes the broker missed while it was away (a revocation it did not confirm) are made now.
    broker.onReturn(() => {
      if (this.stopped) return;
      this.reconcile().catch((err: unknown) => logger.error({ err: errorMessage(err) }, 'reconciling broker accounts after the broker came back failed; retried at its next return or start'));
    });
    return this.reconcile();
  }

  /** Called when an external broker restarted, and at its first uptime (`$SYS`; see BrokerUptimeListener). */
  onBrokerRestart(listener: BrokerUptimeListener): void {
    this.deps.broker.onRestart(listener);
  }

  /** Issues secrets and makes the broker and the store hold them; returns them (shown once). */
  async provision(deviceIds: readonly string[], info: ProvisionInfo = {}): Promise<ProvisionedDevice[]> {
    const { credentials, registry, broker } = this.deps;
    const issued = credentials.issue(deviceIds, info.rotate ? { rotate: true } : {});
    const accounts: DeviceAccount[] = issued.map((p) => ({
      deviceId: p.deviceId,
      // The operator's model replaces any known before (re-provisioning changes the role).
      hardwareModel: info.hardwareModel ?? registry.hardwareModelOf(p.deviceId),
      enabled: true,
      secret: p.secret,
    }));
    try {
      await broker.push(accounts);
    } catch (err) {
      this.deps.counters.inc('broker.accounts.push.failed');
      throw new BrokerAccountsError(`nothing was provisioned: the broker did not take the accounts of ${describe(deviceIds)} (${errorMessage(err)})`);
    }
    await credentials.commit(issued);
    const now = this.deps.now();
    await Promise.all(
      accounts.map((a) =>
        registry.provisioned(a.deviceId, now, {
          ...(info.hardwareModel !== undefined ? { hardwareModel: info.hardwareModel } : {}),
          ...(info.tags !== undefined ? { tags: info.tags } : {}),
        }),
      ),
    );
    for (const a of accounts) {
      if (a.hardwareModel === undefined) this.unmodelled.add(a.deviceId);
      else this.unmodelled.delete(a.deviceId);
    }
    // Last: a session it closes may be flagged on the device, which the registry must know by then.
    broker.enforce(accounts);
    return issued.map(({ deviceId, secret }) => ({ deviceId, secret }));
  }

  /**
   * Revokes a device: `found: false` when it has no credentials. With `brokerError` the store revoked
   * it but the broker did not confirm disabling its account (the caller records the revocation, then
   * reports the error).
   */
  async revoke(deviceId: string): Promise<{ found: boolean; brokerError?: BrokerAccountsError }> {
    if (!(await this.deps.credentials.revoke(deviceId))) return { found: false };
    const account: DeviceAccount = { deviceId, hardwareModel: this.deps.registry.hardwareModelOf(deviceId), enabled: false };
    this.deps.broker.enforce([account]);
    try {
      await this.deps.broker.push([account]);
      return { found: true };
    } catch (err) {
      this.deps.counters.inc('broker.accounts.push.failed');
      const brokerError = new BrokerAccountsError(
        `${deviceId} is revoked here (its downloads are refused), but the broker did not confirm disabling its account: ${errorMessage(err)}; run the revoke again once the broker answers (the coordinator also disables it when it next reconnects or starts)`,
      );
      return { found: true, brokerError };
    }
  }

  /**
   * Brings the broker's accounts in line with the store (at start-up and whenever the broker comes
   * back); counted and logged. Concurrent calls share one run.
   */
  reconcile(): Promise<ReconcileReport> {
    this.reconciling ??= this.reconcileNow().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async reconcileNow(): Promise<ReconcileReport> {
    const { credentials, registry, broker, counters, logger } = this.deps;
    const devices: DeviceAccount[] = credentials.all().map((c) => ({ deviceId: c.deviceId, hardwareModel: registry.hardwareModelOf(c.deviceId), enabled: !c.revoked }));
    this.unmodelled.clear();
    for (const d of devices) if (d.enabled && d.hardwareModel === undefined) this.unmodelled.add(d.deviceId);
    const report = await broker.reconcile(devices);
    counters.inc('broker.accounts.reconciled');
    counters.inc('broker.accounts.created', report.created.length);
    counters.inc('broker.accounts.disabled', report.disabled.length);
    counters.inc('broker.accounts.corrected', report.corrected.length);
    counters.inc('broker.accounts.unknown-disabled', report.unknownDisabled.length);
    if (broker.kind !== 'embedded') {
      logger.info(
        {
          broker: broker.kind,
          devices: report.devices,
          created: report.created.length,
          disabled: report.disabled.length,
          corrected: report.corrected.length,
          unknownDisabled: report.unknownDisabled.length,
          defaultAccessFixed: report.defaultAccessFixed,
          changes: report.changes,
        },
        'broker accounts reconciled',
      );
    }
    if (report.created.length > 0) {
      logger.warn(
        { devices: report.created.slice(0, LOGGED_IDS), count: report.created.length },
        'devices had no account on the broker: created without a secret (only hashes are kept here); rotate them with `fleet devices provision <ids> --rotate` and give the devices their new secrets',
      );
    }
    if (report.unknownDisabled.length > 0) {
      logger.warn({ clients: report.unknownDisabled.slice(0, LOGGED_IDS), count: report.unknownDisabled.length }, 'broker accounts of devices this coordinator does not know were disabled');
    }
    return report;
  }

  /** Narrows a device's role to the model its first hello gave it (in the background; failures are retried at the next reconciliation). */
  private modelKnown(deviceId: string, hardwareModel: string): void {
    this.unmodelled.delete(deviceId);
    if (this.stopped) return;
    this.deps.broker.push([{ deviceId, hardwareModel, enabled: this.deps.credentials.has(deviceId) }]).catch((err: unknown) => {
      this.deps.counters.inc('broker.accounts.push.failed');
      this.deps.logger.error({ deviceId, hardwareModel, err: errorMessage(err) }, 'could not narrow the broker role to the model of the first hello; retried at the next reconciliation');
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    await this.reconciling?.catch(() => undefined);
    await this.deps.broker.stop();
  }
}

function describe(ids: readonly string[]): string {
  return ids.length === 1 ? ids[0]! : `${ids.length} devices`;
}
