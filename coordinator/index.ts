/**
 * coordinator/: the public entry. The simulator and integration tests embed the coordinator through
 * these exports only.
 */
export { createCoordinator, type Coordinator, type CoordinatorOptions } from './coordinator.js';
export type { DeviceProgress } from './engine/types.js';
export type { DecisionRecord } from './gate/decision.js';
export type { GateAnalyzer } from './gate/analyzer.js';
export { DEFAULT_GATE_POLICY } from './gate/analyzer.js';
// The default wave-gate analyzers, for embedders that pin the gate (`CoordinatorOptions.analyzers`).
export { hardGatesAnalyzer } from './gate/hard-gates.js';
export { createStatAnalyzer, NO_CONTROL_CODE } from './canary/stat-judge.js';
export { AdminClient } from './cli/admin-client.js';
// Canary analysis for the judge's calibration study: telemetry replayed through the real store and
// snapshot builder, the statistical judge, and the soak planner.
export { snapshotFromTelemetry } from './canary/telemetry-replay.js';
export { judgeSnapshot } from './canary/stat-judge.js';
export { planPower } from './canary/soak-planner.js';
