/**
 * Events, effects and configuration of the agent's update state machine (update-machine.ts). Pure types.
 */
import type { Command, Manifest } from '@fleet/protocol/signed';
import type { UpdateReason } from '@fleet/protocol/reasons';
import type { SlotName, UpdateState } from '@fleet/protocol/update-state';
import type { Verified } from '@fleet/firmware/manifest';
import type { AgentState, Artifact } from './agent-state.js';

/** What the bootloader says about the boot the agent runs in (plus a boot id to tell boots apart). */
export interface BootInfo {
  booted: SlotName;
  primary: SlotName;
  trial: boolean;
  bootId: string;
}

/** Knobs from the agent config the machine needs (durations in ms). */
export interface MachineConfig {
  maxDownloadAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  trialWindowMs: number;
  /** Least time between two progress reports of one download (and after the job's last change). */
  progressIntervalMs: number;
}

export type UpdateEvent =
  | { type: 'boot'; boot: BootInfo }
  | { type: 'rollout'; deploymentId: string; wave: number; verified: Verified<Manifest> }
  /** The wave topic was cleared (any deployment) or carries a cancel for `deploymentId`. */
  | { type: 'rollout-cleared'; deploymentId?: string }
  | { type: 'download-progress'; deploymentId: string; bytes: number }
  | { type: 'download-finished'; deploymentId: string }
  | {
      type: 'download-failed';
      deploymentId: string;
      reason: Extract<UpdateReason, 'download-failed' | 'size-mismatch' | 'hash-mismatch'>;
      detail: string;
      retryable: boolean;
      /** The server refused for load (503/429): retried without spending an attempt (bounded). */
      busy?: boolean;
      /** The server's Retry-After, in ms. */
      retryAfterMs?: number;
    }
  | { type: 'retry-due'; deploymentId: string }
  | { type: 'verify-done'; deploymentId: string; ok: boolean; detail?: string }
  | { type: 'slot-written'; deploymentId: string }
  | { type: 'slot-failed'; deploymentId: string; reason: Extract<UpdateReason, 'write-failed' | 'readback-failed' | 'internal-error'>; detail: string }
  | { type: 'health-passed'; deploymentId: string }
  | { type: 'health-failed'; deploymentId: string; reason: Extract<UpdateReason, 'health-check-failed' | 'broker-unreachable'>; detail: string }
  | { type: 'trial-timeout'; deploymentId: string }
  | { type: 'marked-good'; deploymentId: string }
  | { type: 'command'; command: Command };

export type UpdateEffect =
  | { type: 'report'; deploymentId: string; state: UpdateState; fromVersion: string; toVersion: string; seq: number; reason?: UpdateReason; detail?: string; progress?: { bytes: number; total: number } }
  | { type: 'download'; deploymentId: string; artifact: Artifact }
  | { type: 'cancel-download'; deploymentId: string }
  | { type: 'schedule-retry'; deploymentId: string; at: number }
  | { type: 'verify'; deploymentId: string; artifact: Artifact }
  | { type: 'discard-download'; deploymentId: string }
  | { type: 'write-slot'; deploymentId: string; artifact: Artifact }
  | { type: 'arm-trial' }
  | { type: 'reboot' }
  | { type: 'start-trial'; deploymentId: string; deadlineAt: number }
  | { type: 'stop-trial' }
  | { type: 'mark-good'; deploymentId: string }
  | { type: 'mark-bad' }
  | { type: 'report-now' }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

export interface StepResult {
  state: AgentState;
  effects: UpdateEffect[];
}
