/**
 * The rollout engine's public entry: the pure engine (step, createDeployment, reconcile), its types
 * and schemas, the spec builder, the maintenance-window matcher, and the runner the coordinator shell
 * wires in (its SQLite repository lives with the rest of deployment persistence in coordinator/deployments/).
 */
export * from './types.js';
export { createDeployment, initialState, nextWakeAt, reconcile, step, gatePolicyFor } from './engine.js';
export { buildDeploymentSpec, checkSpecSemantics, defaultWaves, type SpecContext } from './deployment-spec.js';
export { activeWindow, isInsideWindow, isValidCron, nextWindowStart, parseCron } from './maintenance-window.js';
export { bucketsOfWave, matchesTarget, startedBuckets, waveOfDevice } from './wave-plan.js';
export { allDevices, categoryOf, needsRollback, recount, shardDevices, type DeviceCategory } from './device-progress.js';
export { canaryDevices, snapshotFromProgress } from './snapshot.js';
export {
  DeploymentActionError,
  DeploymentConflictError,
  DeploymentNotFoundError,
  EFFECT_RETRY_MS,
  EngineRunner,
  type EngineRunnerOptions,
} from './engine-runner.js';
