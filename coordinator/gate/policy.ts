/**
 * The gate policy as a zod schema (persisted with each deployment, accepted by the admin API). Its
 * output type is the GatePolicy interface of analyzer.ts; defaults are DEFAULT_GATE_POLICY. Pure.
 */
import { z } from 'zod';
import { DEFAULT_GATE_POLICY, type GatePolicy } from './analyzer.js';

const d = DEFAULT_GATE_POLICY;

export const GatePolicySchema = z.object({
  maxInstallFailureShare: z.number().min(0).max(1).default(d.maxInstallFailureShare),
  abortOnTrialFailure: z.boolean().default(d.abortOnTrialFailure),
  maxSilentDevices: z.number().int().min(1).default(d.maxSilentDevices),
  maxSilentShare: z.number().min(0).max(1).default(d.maxSilentShare),
  minReportingDevices: z.number().int().nonnegative().default(d.minReportingDevices),
  aiMayAbort: z.boolean().default(d.aiMayAbort),
}) satisfies z.ZodType<GatePolicy, unknown>;
