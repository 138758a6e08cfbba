/**
 * agent/: the device daemon's public entry. The simulator and the coordinator's integration tests
 * build on these exports only.
 */
export { AgentConfigSchema, parseAgentConfig, type AgentConfig } from './config.js';
export { MemoryStateStore } from './state-store.js';
export type { AgentState } from './agent-state.js';
export { HttpDownloader, type Downloader } from './downloader.js';
export { downloadCredentials } from './agent-defaults.js';
export type { HealthCheckRunner } from './health-checks.js';
export type { TelemetryCollector } from './telemetry/collector.js';
export { FileSlotBackend } from './slots/slot-backend-file.js';
export { SlotError, checkDurableRecord, type BootState, type SlotBackend, type VerifiedImage } from './slots/slot-backend.js';
export { SimulatedDevice, type BootOutcome } from './simulated-device.js';
