/**
 * What the simulator needs from a coordinator, whichever way it runs (embedded in this process, or a
 * separate one reached over its admin API). Pure interface.
 */
import type { TrustStore } from '@fleet/firmware/trust-store';
import type { DecisionView, ProgressView, WaveRecord } from './report.js';

export interface DeploymentView {
  id: string;
  phase: string;
  current: number;
  /** Held for an operator (paused by one, or by the gate's Monitor limit). */
  paused: { cause: string; reason?: string } | null;
  abortReason?: string;
  waves: WaveRecord[];
  rollback?: { startedAt: number; completedAt?: number; exposed: number; confirmed: number; unreachable: number };
}

export interface CreateDeploymentInput {
  firmwareVersion: string;
  hardwareModels: string[];
  waves: { percent: number; soakMs: number; deadlineMs: number; minDevicesReporting: number }[];
  bucketOffset: number;
  description: string;
  onMonitorLimit: 'abort' | 'pause';
  rollbackDeadlineMs: number;
  /** Devices must carry every one of these tags (empty: no tag needed). */
  tags: string[];
}

export interface CoordinatorHandle {
  /** Where devices connect. */
  readonly brokerUrl: string;
  /** A short description for the report, e.g. `embedded` or the URL. */
  readonly description: string;
  /** Where the operator console is and the token that logs in to it (an embedded coordinator's). */
  readonly dashboard?: { url: string; token: string };
  /** Trust store holding the coordinator's manifest/command signing key. */
  trust(): Promise<TrustStore>;
  /** Credentials for each device (secrets returned once). */
  provision(deviceIds: readonly string[], hardwareModelOf: (id: string) => string): Promise<Map<string, string>>;
  /** Stores an image and returns its digest; the coordinator signs manifests for it. */
  uploadFirmware(version: string, bytes: Buffer, hardware: string[]): Promise<{ sha256: string; size: number }>;
  /** Creates and starts a deployment; `warnings` are the coordinator's (canary waves too small to judge). */
  createDeployment(input: CreateDeploymentInput): Promise<{ id: string; warnings: string[] }>;
  deployment(id: string): Promise<DeploymentView>;
  /**
   * Calls `onChange` whenever the deployment changes (an engine commit or a decision), from the
   * coordinator's own events; returns the unsubscribe. Only where the coordinator offers them (the
   * embedded one): without it a follower polls.
   */
  watch?(id: string, onChange: () => void): () => void;
  decisions(id: string): Promise<DecisionView[]>;
  progress(id: string): Promise<ProgressView[]>;
  /** Operator abort (with rollback): the simulator ends a rollout that is held for an operator. */
  abort(id: string, reason: string): Promise<void>;
  /** How many of `ids` the registry knows as online. */
  onlineDevices(ids: ReadonlySet<string>): Promise<number>;
  /** The hardware model the registry holds for each of `ids` it knows one for. */
  hardwareModels(ids: readonly string[]): Promise<Map<string, string>>;
  /** Fault injection; may throw `not-supported` for an external coordinator. */
  restartBroker(): Promise<void>;
  restartCoordinator(): Promise<void>;
  stop(): Promise<void>;
}
