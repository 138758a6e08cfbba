/**
 * The decision record: what the coordinator stores for every gate decision (and every early hard-limit
 * abort or operator override), with the digest of its inputs, every analyzer's output and latency,
 * the final verdict and the rule that produced it. Pure.
 */
import { z } from 'zod';
import { DeploymentIdSchema } from '@fleet/protocol/ids';
import { RecommendationSchema, RiskLevelSchema, VerdictSchema } from '@fleet/protocol/canary';

export const AnalyzerRoleSchema = z.enum(['hard', 'statistical', 'advisory']);
export type AnalyzerRole = z.infer<typeof AnalyzerRoleSchema>;

export const AnalyzerRecordSchema = z.object({
  name: z.string(),
  role: AnalyzerRoleSchema,
  ok: z.boolean(),
  latencyMs: z.number().nonnegative(),
  verdict: VerdictSchema.optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  /** How the combination used it, e.g. `capped-at-Monitor` for an advisory Abort. */
  applied: RecommendationSchema.optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
});
export type AnalyzerRecord = z.infer<typeof AnalyzerRecordSchema>;

/** Who decided: a gate run, an early hard limit, an operator, the Monitor limit, or an empty wave (no gate). */
export const DecisionSourceSchema = z.enum(['gate', 'early-hard-limit', 'operator', 'monitor-limit', 'empty-wave']);
export type DecisionSource = z.infer<typeof DecisionSourceSchema>;

export const DecisionRecordSchema = z.object({
  id: z.string().min(1).max(128),
  deploymentId: DeploymentIdSchema,
  wave: z.number().int().nonnegative(),
  /** The gate run this answers (0 for decisions outside a gate run). */
  attempt: z.number().int().nonnegative(),
  at: z.number().int().nonnegative(),
  source: DecisionSourceSchema,
  /** sha256 of the canonical JSON of the inputs (the canary snapshot, or the counts for early checks). */
  inputsDigest: z.string(),
  /** The policy in force. */
  policy: z.record(z.string(), z.unknown()),
  analyzers: z.array(AnalyzerRecordSchema),
  final: z.object({
    recommendation: RecommendationSchema,
    riskLevel: RiskLevelSchema,
    /** e.g. `most-cautious: hard-gates=Abort (hard-limit:trial-failures)`. */
    rule: z.string(),
    issues: z.array(z.string()),
  }),
  actor: z.string().optional(),
});
export type DecisionRecord = z.infer<typeof DecisionRecordSchema>;
