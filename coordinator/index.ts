/**
 * coordinator/: the public entry. The simulator and integration tests embed the coordinator through
 * these exports only.
 */
export { createCoordinator, COORDINATOR_VERSION, type Coordinator, type CoordinatorEvents, type CoordinatorMetrics, type CoordinatorOptions, type FirmwareUpload } from './coordinator.js';
export { readAdminFile, type AdminFile } from './data-dir.js';
export {
  loadConfig,
  CoordinatorConfigSchema,
  AppEnvSchema,
  type AppEnv,
  type CoordinatorConfig,
  type CoordinatorConfigInput,
} from './config.js';
export { deploymentView, type DeploymentView } from './deployments/deployment-service.js';
export type { DeviceRecord } from './registry/device-registry.js';
export type { ArtifactRecord } from './artifacts/artifact-store.js';
export type { ProvisionedDevice } from './broker/credentials.js';
export type {
  AuditEntry,
  DeploymentCore,
  DeploymentPhase,
  DeploymentRequest,
  DeploymentRequestInput,
  DeviceProgress,
  OperatorAction,
  OperatorActionInput,
  WaveSpecInput,
} from './engine/types.js';
export type { DecisionRecord } from './gate/decision.js';
export type { AnalyzerContext, AnalyzerOutcome, GateAnalyzer, GatePolicy } from './gate/analyzer.js';
export { DEFAULT_GATE_POLICY } from './gate/analyzer.js';
// The default wave-gate analyzers, for embedders that pin the gate (`CoordinatorOptions.analyzers`).
export { hardGatesAnalyzer } from './gate/hard-gates.js';
export { createStatAnalyzer, NO_CONTROL_CODE, type StatAnalyzerOptions } from './canary/stat-judge.js';
export { AdminClient, AdminApiError } from './cli/admin-client.js';
// Canary analysis for the judge's calibration study: telemetry replayed through the real store and
// snapshot builder, the statistical judge, and the soak planner.
export { snapshotFromTelemetry, type ReplayRequest } from './canary/telemetry-replay.js';
export { judgeSnapshot } from './canary/stat-judge.js';
export { DEFAULT_JUDGE_CONFIG } from './canary/judge-config.js';
export { planPower } from './canary/soak-planner.js';
