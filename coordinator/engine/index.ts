/**
 * The rollout engine's public entry: the pure engine (step, createDeployment, reconcile), its types
 * and schemas, the spec builder, the maintenance-window matcher, the SQLite repository with its
 * migrations, and the runner the coordinator shell wires in.
 */
export * from './types.js';
export { createDeployment, initialState, nextWakeAt, reconcile, step, gatePolicyFor } from './engine.js';
export { buildDeploymentSpec, checkSpecSemantics, defaultWaves, type SpecContext } from './deployment-spec.js';
export { activeWindow, isInsideWindow, isValidCron, nextWindowStart, windowCron } from './maintenance-window.js';
export { bucketsOfWave, matchesTarget, startedBuckets, waveOfDevice } from './wave-plan.js';
export { allDevices, categoryOf, needsRollback, recount, shardDevices, type DeviceCategory } from './device-progress.js';
export { canaryDevices, snapshotFromProgress } from './snapshot.js';
export { ENGINE_MIGRATIONS } from './engine-migrations.js';
export { CorruptRecordError, RevisionConflictError, SqliteDeploymentRepository } from './deployment-repo-sqlite.js';
export {
  DeploymentActionError,
  DeploymentConflictError,
  DeploymentNotFoundError,
  EFFECT_RETRY_MS,
  EngineRunner,
  type EngineRunnerOptions,
} from './engine-runner.js';
