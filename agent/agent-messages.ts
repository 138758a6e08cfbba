/**
 * Builds the messages the agent publishes (hello, status, telemetry, presence). Pure.
 */
import { PROTOCOL_VERSION } from '@fleet/protocol/signed';
import {
  CUSTOM_METRIC_NAME,
  MAX_CUSTOM_METRICS,
  MAX_CUSTOM_METRIC_MAGNITUDE,
  type HelloMessage,
  type PresenceMessage,
  type StatusMessage,
  type TelemetryMessage,
} from '@fleet/protocol/messages';
import { currentVersion, reportedState, type AgentState } from './agent-state.js';
import type { UpdateEffect } from './update-machine.js';
import type { TelemetrySample } from './telemetry/collector.js';
import { boundLines } from './telemetry/log-excerpt.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface DeviceIdentity {
  deviceId: string;
  hardwareModel: string;
  /** bucketOf(deviceId), computed once: it is a SHA-256. */
  bucket: number;
  tags: readonly string[];
  agentVersion: string;
}

export function helloMessage(id: DeviceIdentity, state: AgentState, at: number, bootCount?: number): HelloMessage {
  const job = state.job;
  return {
    v: PROTOCOL_VERSION,
    kind: 'hello',
    deviceId: id.deviceId,
    hardwareModel: id.hardwareModel,
    firmwareVersion: currentVersion(state) ?? '0.0.0',
    activeSlot: state.booted,
    agentVersion: id.agentVersion,
    bucket: id.bucket,
    tags: [...id.tags],
    securityFloor: state.securityFloor,
    ...(job ? { update: { deploymentId: job.deploymentId, state: reportedState(job), toVersion: job.toVersion, ...definedProps({ reason: job.reason }) } } : {}),
    ...definedProps({ bootCount }),
    at,
  };
}

export function statusMessage(deviceId: string, e: Extract<UpdateEffect, { type: 'report' }>, at: number): StatusMessage {
  return {
    v: PROTOCOL_VERSION,
    kind: 'status',
    deviceId,
    deploymentId: e.deploymentId,
    state: e.state,
    fromVersion: e.fromVersion,
    toVersion: e.toVersion,
    ...(e.progress ? { progress: e.progress } : {}),
    ...definedProps({ reason: e.reason }),
    ...(e.detail !== undefined ? { detail: e.detail.slice(0, 512) } : {}),
    seq: e.seq,
    at,
  };
}

export function presenceMessage(deviceId: string, online: boolean, at?: number): PresenceMessage {
  return { v: PROTOCOL_VERSION, kind: 'presence', deviceId, state: online ? 'online' : 'offline', ...definedProps({ at }) };
}

const RANGES: Record<string, [number, number]> = {
  cpuPct: [0, 100],
  memUsedMb: [0, Infinity],
  memTotalMb: [0, Infinity],
  temperatureC: [-80, 200],
  batteryPct: [0, 100],
  powerW: [0, Infinity],
  bootTimeS: [0, Infinity],
};

/** Keeps only finite, in-range metrics, so a collector bug never produces an invalid message. */
export function sanitizeMetrics(metrics: TelemetrySample['metrics']): TelemetryMessage['metrics'] {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics)) {
    const range = RANGES[k];
    if (range && typeof v === 'number' && Number.isFinite(v) && v >= range[0] && v <= range[1]) out[k] = v;
  }
  return out;
}

export function telemetryMessage(
  deviceId: string,
  state: AgentState,
  sample: TelemetrySample,
  uptimeS: number,
  bootCount: number,
  seq: number,
  maxLogLines: number,
  at: number,
): TelemetryMessage {
  const custom: Record<string, number> = {};
  // Within the protocol's bounds, or the coordinator would refuse the whole message.
  let kept = 0;
  for (const [k, v] of Object.entries(sample.custom ?? {})) {
    if (kept >= MAX_CUSTOM_METRICS) break;
    if (!CUSTOM_METRIC_NAME.test(k) || !Number.isFinite(v) || Math.abs(v) > MAX_CUSTOM_METRIC_MAGNITUDE) continue;
    custom[k] = v;
    kept++;
  }
  return {
    v: PROTOCOL_VERSION,
    kind: 'telemetry',
    deviceId,
    firmwareVersion: currentVersion(state) ?? '0.0.0',
    slot: state.booted,
    uptimeS: Math.max(0, uptimeS),
    bootCount,
    metrics: sanitizeMetrics(sample.metrics),
    counters: { ...state.counters },
    custom,
    logs: boundLines(sample.logs ?? [], Math.min(20, maxLogLines)),
    seq,
    at,
  };
}
