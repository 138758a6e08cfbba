/**
 * The admin API as the console reads it. The console's own answers come from protocol/console.ts and
 * deployments from protocol/deployment-view.ts (the schemas the coordinator answers to); the other
 * routes' answers are described here as far as the pages use them.
 */
export type { CohortSeries, DeviceTelemetry, FleetSummary } from '../../protocol/console.js';
export type { DeploymentView, WaveView } from '../../protocol/deployment-view.js';

export type Role = 'viewer' | 'operator' | 'admin';

export interface Session {
  user: { name: string; role: Role };
  /** Sent as `x-csrf-token` with every change (a cookie session always has one). */
  csrfToken?: string;
  /** When the session ends unless used again. */
  expiresAt?: number;
}

export interface AnalyzerRecord {
  name: string;
  role: 'hard' | 'statistical' | 'advisory';
  ok: boolean;
  latencyMs: number;
  verdict?: {
    recommendation: 'Proceed' | 'Monitor' | 'Abort';
    riskLevel: string;
    score?: number;
    issues: string[];
    rule: string;
    evidence: { check: string; result: string; values: Record<string, number | string | boolean | null>; note?: string }[];
  };
  error?: { code: string; message: string };
  applied?: string;
}

export interface DecisionRecord {
  id: string;
  deploymentId: string;
  wave: number;
  attempt: number;
  at: number;
  source: 'gate' | 'early-hard-limit' | 'operator' | 'monitor-limit' | 'empty-wave';
  inputsDigest: string;
  analyzers: AnalyzerRecord[];
  final: { recommendation: 'Proceed' | 'Monitor' | 'Abort'; riskLevel: string; rule: string; issues: string[] };
  actor?: string;
}

export interface DeviceView {
  deviceId: string;
  hardwareModel: string | null;
  firmwareVersion: string | null;
  activeSlot: string | null;
  securityFloor: number;
  agentVersion: string | null;
  bucket: number;
  tags: string[];
  online: boolean;
  lastSeen: number | null;
  firstSeen: number | null;
  provisionedAt: number | null;
  ghost: boolean;
  update: { deploymentId: string; state: string; toVersion?: string } | null;
  hasCredentials?: boolean;
}

export interface DeviceDetail extends DeviceView {
  deployments: { deploymentId: string; wave: number; state: string; reason?: string; detail?: string; lastStatusAt?: number; lastSeenAt: number; rollback?: { status: string } }[];
  anomalies: { kind: string; count: number; firstAt: number; lastAt: number; detail: string }[];
}

export interface DeviceProgress {
  deviceId: string;
  wave: number;
  state: string;
  rollback?: { status: 'sent' | 'confirmed' | 'unreachable' | 'refused' };
}

export interface AuditRecord {
  id: number;
  at: number;
  actor: string;
  /** The signed-in user behind the entry, their role and address (absent from older coordinators). */
  user?: string | null;
  role?: string | null;
  source?: string | null;
  action: string;
  subject: string | null;
  reason?: string | null;
  detail: Record<string, unknown>;
}

export interface Flag {
  name: string;
  description: string;
  scope: 'coordinator' | 'device';
  enabled: boolean;
  rollout: number;
  variants: { name: string; weight: number; payload: Record<string, string> }[];
  version: number;
  updatedAt: number;
  updatedBy: string;
  stored: boolean;
}
