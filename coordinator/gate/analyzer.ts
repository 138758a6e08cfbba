/**
 * The wave gate's analyzer seam. Every analyzer (hard gates, the statistical judge, the AI risk
 * scorer) takes the same canary snapshot and returns a verdict; the gate combines them so that no
 * analyzer can relax another's caution. Pure interface.
 */
import type { CanarySnapshot, Verdict } from '@fleet/protocol/canary';

export interface GatePolicy {
  /** Share of wave devices whose install failed (failed, trial failures) that aborts. Default 0.1. */
  maxInstallFailureShare: number;
  /** Any device whose trial boot failed or fell back aborts. Default true. */
  abortOnTrialFailure: boolean;
  /** Devices silent after installing that abort (with at least this share). Defaults 2 and 0.05. */
  maxSilentDevices: number;
  maxSilentShare: number;
  /** Minimum reporting canary devices before anything may Proceed. Default 20 (capped by wave size). */
  minReportingDevices: number;
  /** Whether the AI may escalate to Abort on its own. Default false: at most Monitor. */
  aiMayAbort: boolean;
}

export const DEFAULT_GATE_POLICY: GatePolicy = {
  maxInstallFailureShare: 0.1,
  abortOnTrialFailure: true,
  maxSilentDevices: 2,
  maxSilentShare: 0.05,
  minReportingDevices: 20,
  aiMayAbort: false,
};

export interface AnalyzerContext {
  policy: GatePolicy;
  /** Milliseconds since the epoch, from the injected clock. */
  now: number;
  signal?: AbortSignal;
}

export type AnalyzerOutcome =
  | { ok: true; verdict: Verdict; latencyMs: number; meta?: Record<string, unknown> }
  /** An analyzer failure (timeout, invalid answer) is an error record, never a verdict. */
  | { ok: false; error: { code: string; message: string }; latencyMs: number; meta?: Record<string, unknown> };

export interface GateAnalyzer {
  /** Stable name recorded with each decision, e.g. `hard-gates`, `stat`, `ai`. */
  readonly name: string;
  /**
   * How the combination treats its verdict: `hard` and `statistical` verdicts count in full (most
   * cautious wins); an `advisory` (AI) verdict may escalate to Monitor, and to Abort only where the
   * policy's `aiMayAbort` allows. Default: `advisory` for an analyzer named `ai`, else `statistical`.
   */
  readonly role?: 'hard' | 'statistical' | 'advisory';
  analyze(snapshot: CanarySnapshot, ctx: AnalyzerContext): Promise<AnalyzerOutcome>;
}
