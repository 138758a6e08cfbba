/**
 * The coordinator's public surface: the Coordinator interface that `createCoordinator` returns, and
 * what its commands and queries take and give. Types only.
 */
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { CoordinatorConfig } from './config.js';
import type { AuditRecord } from './store/audit-log.js';
import type { ProvisionedDevice } from './broker/credentials.js';
import type { DeviceFilter, DeviceRecord } from './registry/device-registry.js';
import type { DeviceAnomaly } from './registry/anomaly-log.js';
import type { ArtifactRecord } from './artifacts/artifact-store.js';
import type { UploadRequest } from './artifacts/firmware-service.js';
import type { DeploymentRequestInput, DeviceProgress, OperatorActionInput } from './engine/types.js';
import type { DeploymentView } from './deployments/deployment-view.js';
import type { CoordinatorEvents } from './coordinator-parts.js';

/** What `metrics()` and GET /v1/metrics report. */
export interface CoordinatorMetrics {
  /** Real time this process started. */
  startedAt: number;
  /** Counters since this process started. */
  counters: Record<string, number>;
  /** Counters over every run on this data directory since `totalsSince` (stored every few seconds and at stop). */
  totalsSince: number | null;
  totals: Record<string, number>;
  /** Downloads holding a slot, and waiting for one. */
  downloads: { active: number; queued: number };
  devices: { known: number; connected: number | null; withAnomalies: number };
  telemetry: { pending: number; written: number };
  deployments: Record<string, unknown>;
}

/** A firmware image to store and sign: a path or a stream, and what its manifest says. */
export type FirmwareUpload = Omit<UploadRequest, 'source'> & { image: string | Readable };

/** The running coordinator, as embedders (the CLI, the simulator, tests) see it. */
export interface Coordinator {
  readonly config: CoordinatorConfig;
  /** Audit entries and device changes as they happen. */
  readonly events: EventEmitter<CoordinatorEvents>;
  /** Where devices connect. */
  readonly mqttUrl: string;
  /** Admin API and artifact base URL. */
  readonly httpUrl: string;
  /** The operator bearer token for the admin API. */
  readonly adminToken: string;
  /** Directory holding the coordinator's public key: a trust store for agents. */
  readonly trustDir: string;
  readonly publicKeyPem: string;

  /** Provisions devices and returns their secrets (shown once). Fast with a low `credentialCost`. */
  provisionDevices(deviceIds: readonly string[], info?: { hardwareModel?: string; tags?: string[]; rotate?: boolean }): Promise<ProvisionedDevice[]>;
  /** Stores and signs a firmware image. */
  uploadFirmware(input: FirmwareUpload): Promise<ArtifactRecord>;
  /** Creates a deployment (validated like the admin API's body). */
  createDeployment(request: DeploymentRequestInput, actor?: string): Promise<DeploymentView>;
  /** Applies an operator action (pause, resume, promote, abort, rollback, approve, start). */
  act(deploymentId: string, action: OperatorActionInput, actor?: string): Promise<DeploymentView>;

  /** A deployment with its decisions, or undefined. */
  deployment(deploymentId: string): Promise<DeploymentView | undefined>;
  /** Deployments, newest first. */
  deployments(limit?: number): Promise<DeploymentView[]>;
  /** Every device a deployment tracks (or one wave's, 0-based), with its progress. */
  deploymentDevices(deploymentId: string, wave?: number): Promise<DeviceProgress[]>;
  /** What the registry knows about a device. */
  device(deviceId: string): DeviceRecord | undefined;
  devices(filter?: DeviceFilter): DeviceRecord[];
  /** What a device did that was refused or shed. */
  anomalies(deviceId: string): DeviceAnomaly[];
  /** Audit entries, newest first; `subject` a deployment id, a device id, an image's sha256. */
  auditEntries(filter?: { subject?: string; limit?: number }): Promise<AuditRecord[]>;
  /** One counter since this process started (0 when never counted). */
  counter(name: string): number;
  metrics(): CoordinatorMetrics;

  /** Stores queued telemetry and devices' last-seen times; resolves with telemetry messages written. */
  flush(): Promise<number>;
  /**
   * Stops and restarts the MQTT side (fault injection for the simulator): every device is
   * disconnected, must reconnect, and retained manifests are re-published from the store.
   */
  restartBroker(): Promise<void>;
  stop(): Promise<void>;
}
