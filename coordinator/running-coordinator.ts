/**
 * The object `createCoordinator` returns: the coordinator's commands and queries over its parts,
 * and the order in which it stops them. Its constructor only takes the parts, all built and started
 * by then. I/O shell.
 */
import { createReadStream } from 'node:fs';
import { publicKeyPem } from '@fleet/firmware/keys';
import { ValidationError } from '@fleet/protocol/errors';
import { formatIssues } from '@fleet/protocol/parse';
import type { Transport } from './broker/transport.js';
import type { DeviceAccounts } from './broker/device-accounts.js';
import type { Housekeeping } from './housekeeping.js';
import type { TelemetryWriter } from './telemetry/telemetry-writer.js';
import type { AuditRecord } from './store/audit-log.js';
import type { ProvisionedDevice } from './broker/credentials.js';
import type { DeviceFilter, DeviceRecord } from './registry/device-registry.js';
import type { DeviceAnomaly } from './registry/anomaly-log.js';
import type { ArtifactRecord } from './artifacts/artifact-store.js';
import { DeploymentRequestSchema, OperatorActionSchema, type DeploymentRequestInput, type DeviceProgress, type OperatorActionInput } from './engine/types.js';
import type { DeploymentView } from './deployments/deployment-view.js';
import type { Artifacts, Basics, Deployments, Observers, Stores } from './coordinator-parts.js';
import type { Coordinator, CoordinatorMetrics, FirmwareUpload } from './coordinator-api.js';
import type { Replication } from './cluster/replication.js';

/** Every part of a running coordinator. */
export interface CoordinatorParts extends Basics, Stores, Artifacts, Deployments, Observers {
  telemetry: TelemetryWriter;
  transport: Transport;
  /** Devices' credentials in the store and on the broker together (provision, rotate, revoke). */
  accounts: DeviceAccounts;
  housekeeping: Housekeeping;
  /** The operator console's live feed (console/mount-console.ts). */
  console: { stop(): void };
  /** Leadership among replicas on PostgreSQL (cluster/replication.ts); undefined on SQLite. */
  replication: Replication | undefined;
  /** Real time this process started. */
  startedAt: number;
}

/**
 * `counters` count since this process started (`startedAt`); `totals` over every run on this data
 * directory since `totalsSince` (stored every few seconds and at stop, so a crash loses at most the
 * last few seconds of increments).
 */
export function coordinatorMetrics(p: CoordinatorParts): CoordinatorMetrics {
  const connected = p.transport.connectedDevices();
  const { totals, since } = p.counterTotals.totals();
  return {
    startedAt: p.startedAt,
    counters: p.counters.snapshot(),
    totalsSince: since,
    totals,
    downloads: { active: p.downloads.activeDownloads, queued: p.downloads.queuedDownloads },
    devices: { known: p.registry.size, connected: connected?.size ?? null, withAnomalies: p.anomalies.devices },
    telemetry: { pending: p.telemetry.pending, written: p.telemetry.written },
    deployments: p.deployments.summary(),
  };
}

export class RunningCoordinator implements Coordinator {
  private stopped = false;

  constructor(private readonly p: CoordinatorParts) {}

  get config(): Coordinator['config'] {
    return this.p.config;
  }

  get events(): Coordinator['events'] {
    return this.p.events;
  }

  get mqttUrl(): string {
    return this.p.transport.url;
  }

  get httpUrl(): string {
    return this.p.http.url;
  }

  get adminToken(): string {
    return this.p.adminToken;
  }

  get trustDir(): string {
    return this.p.trustDir;
  }

  get publicKeyPem(): string {
    return publicKeyPem(this.p.key);
  }

  // ---- commands --------------------------------------------------------------------------------

  async provisionDevices(deviceIds: readonly string[], info: { hardwareModel?: string; tags?: string[]; rotate?: boolean } = {}): Promise<ProvisionedDevice[]> {
    const out = await this.p.accounts.provision(deviceIds, info);
    const now = this.p.clock.now();
    await this.p.auditLog.append(now, 'operator', 'devices.provisioned', `${deviceIds.length} devices`, { count: deviceIds.length });
    return out;
  }

  async uploadFirmware(input: FirmwareUpload): Promise<ArtifactRecord> {
    const { image, ...rest } = input;
    const record = await this.p.firmware.upload({ source: typeof image === 'string' ? createReadStream(image) : image, ...rest });
    await this.p.auditLog.append(this.p.clock.now(), 'operator', 'firmware.uploaded', record.firmwareVersion, { sha256: record.sha256, size: record.size });
    return record;
  }

  async createDeployment(request: DeploymentRequestInput, actor = 'operator'): Promise<DeploymentView> {
    const parsed = DeploymentRequestSchema.safeParse(request);
    if (!parsed.success) throw new ValidationError('deployment', formatIssues(parsed.error));
    return this.p.deployments.create(parsed.data, actor);
  }

  async act(deploymentId: string, action: OperatorActionInput, actor = 'operator'): Promise<DeploymentView> {
    const parsed = OperatorActionSchema.safeParse(action);
    if (!parsed.success) throw new ValidationError('operator action', formatIssues(parsed.error));
    return this.p.deployments.act(deploymentId, parsed.data, actor);
  }

  // ---- queries ---------------------------------------------------------------------------------

  deployment(deploymentId: string): Promise<DeploymentView | undefined> {
    return this.p.deployments.view(deploymentId);
  }

  deployments(limit?: number): Promise<DeploymentView[]> {
    return this.p.deployments.list(limit);
  }

  deploymentDevices(deploymentId: string, wave?: number): Promise<DeviceProgress[]> {
    return this.p.deployments.devices(deploymentId, wave);
  }

  device(deviceId: string): DeviceRecord | undefined {
    return this.p.registry.get(deviceId);
  }

  devices(filter?: DeviceFilter): DeviceRecord[] {
    return this.p.registry.list(filter);
  }

  anomalies(deviceId: string): DeviceAnomaly[] {
    return this.p.anomalies.forDevice(deviceId);
  }

  auditEntries(filter: { subject?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    return this.p.auditLog.list(filter);
  }

  counter(name: string): number {
    return this.p.counters.get(name);
  }

  metrics(): CoordinatorMetrics {
    return coordinatorMetrics(this.p);
  }

  // ---- upkeep ----------------------------------------------------------------------------------

  async flush(): Promise<number> {
    if (this.stopped) return 0;
    await this.p.housekeeping.flushSeen();
    return this.p.telemetry.flush();
  }

  async restartBroker(): Promise<void> {
    const { transport, registry, clock } = this.p;
    await transport.stop();
    for (const d of registry.all()) if (d.online) registry.setOnline(d.deviceId, false, clock.now());
    await transport.prepare();
    if (!this.p.config.mqtt.brokerUrl) await this.p.publisher.restore();
    await transport.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const p = this.p;
    // Leadership goes first: another replica may take over while this one stops.
    await p.replication?.stop();
    await p.deployments.stop();
    p.canary.stop();
    p.console.stop();
    // Events the engine emitted last are stored before the dispatcher stops: the next start sends them.
    await p.webhooks.service.settled();
    await p.webhooks.dispatcher.stop();
    await p.http.stop();
    await p.integrity.stop();
    await p.accounts.stop();
    await p.transport.stop();
    // No login comes any more: store the secrets' fast forms still waiting.
    await p.credentials.settled();
    await p.housekeeping.stop();
    await p.telemetry.stop();
    await p.housekeeping.flushCounters();
    await p.telemetrySql.close();
    await p.sql.close();
    p.lock.release({ stoppedAt: p.timers.now() });
    p.events.removeAllListeners();
    p.logger.info('coordinator stopped');
  }
}
