/**
 * agent/: the device daemon's public entry. The simulator and the coordinator's integration tests
 * build on these exports only.
 */
export { Agent, AGENT_VERSION, type AgentEvent, type AgentOptions } from './agent.js';
export { machineConfigOf } from './agent-options.js';
export { AgentConfigSchema, DurationSchema, loadAgentConfig, parseAgentConfig, type AgentConfig, type AgentConfigInput } from './config.js';
export {
  AgentStateSchema,
  JobSchema,
  beginRun,
  currentVersion,
  initialAgentState,
  isBusy,
  reportedState,
  type AgentState,
  type Job,
  type JobStage,
} from './agent-state.js';
export { step, retryDelay, MAX_REBOOT_RETRIES, type BootInfo, type MachineConfig, type UpdateEffect, type UpdateEvent, type StepResult } from './update-machine.js';
export { FileStateStore, MemoryStateStore, StateStoreError, writeFileAtomic, type StateStore } from './state-store.js';
export { HttpDownloader, type Downloader, type DownloadOptions, type DownloadOutcome, type DownloadRequest, type HttpDownloaderOptions } from './downloader.js';
export { downloadCredentials } from './agent-defaults.js';
export { CommandHealthCheckRunner, type HealthCheck, type HealthCheckRunner, type HealthResult } from './health-checks.js';
export { MqttSession, reconnectDelay, type MqttConnect } from './mqtt-session.js';
export { combineCollectors, type TelemetryCollector, type TelemetryMetrics, type TelemetrySample } from './telemetry/collector.js';
export { LinuxCollector } from './telemetry/linux-collector.js';
export { LogExcerptCollector, boundLines } from './telemetry/log-excerpt.js';
export { ScriptMetricsCollector, parseCustomMetrics } from './telemetry/custom-metrics.js';
export { FileSlotBackend, BootloaderStateSchema, type BootloaderState, type FileSlotBackendOptions } from './slots/slot-backend-file.js';
export { createSlotBackend } from './slots/create-slot-backend.js';
export { SlotError, checkDurableRecord, DURABLE_MAX_BYTES, type BootState, type SlotBackend, type SlotBackendKind, type VerifiedImage } from './slots/slot-backend.js';
export {
  DurableRecordSchema,
  decodeDurable,
  durableOf,
  encodeDurable,
  mergeDurable,
  rebuildState,
  type DurableRecord,
} from './durable-record.js';
export { SimulatedDevice, type BootOutcome, type PowerableSlotBackend, type SimulatedDeviceOptions } from './simulated-device.js';
export { helloMessage, statusMessage, telemetryMessage, presenceMessage } from './agent-messages.js';
