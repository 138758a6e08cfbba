/**
 * The webhook wire format: the JSON body the coordinator POSTs to an operator's receiver on gate
 * decisions, aborts, completions and rollbacks, and the headers that sign it. A receiver parses the
 * body with `WebhookEventSchema` (after checking the signature over the raw bytes). Version `v` 1.
 *
 * Headers on every delivery:
 *   X-Fleet-Event      the event type (`gate.decided`, …)
 *   X-Fleet-Delivery   the delivery id (the same on every retry of one event to one webhook)
 *   X-Fleet-Timestamp  seconds since the epoch when this attempt was signed
 *   X-Fleet-Signature  `sha256=` + hex HMAC-SHA256(secret, `${timestamp}.${raw body}`)
 * Pure (zod only).
 */
import { z } from 'zod';
import { DeploymentIdSchema } from './ids.js';
import { RecommendationSchema, RiskLevelSchema } from './canary.js';

export const WEBHOOK_EVENT_TYPES = ['gate.decided', 'deployment.aborted', 'deployment.completed', 'rollback.started', 'rollback.finished', 'webhook.test'] as const;
export const WebhookEventTypeSchema = z.enum(WEBHOOK_EVENT_TYPES);
export type WebhookEventType = z.infer<typeof WebhookEventTypeSchema>;

/** Events a webhook can subscribe to (`webhook.test` goes to a webhook only when asked for). */
export const SUBSCRIBABLE_EVENTS: readonly WebhookEventType[] = WEBHOOK_EVENT_TYPES.filter((t) => t !== 'webhook.test');

export const WEBHOOK_HEADERS = {
  event: 'x-fleet-event',
  delivery: 'x-fleet-delivery',
  timestamp: 'x-fleet-timestamp',
  signature: 'x-fleet-signature',
} as const;

const base = {
  v: z.literal(1),
  /** Unique per event: a receiver that sees one twice (a retry whose answer was lost) drops it. */
  id: z.string().min(1).max(128),
  /** When it happened (ms since the epoch, the coordinator's clock). */
  at: z.number().int().nonnegative(),
};
const deployment = { ...base, deploymentId: DeploymentIdSchema };
/** Who acted: `operator:<name>`-style names, `gate`, `engine`. */
const Actor = z.string().max(128);

export const AnalyzerSummarySchema = z.object({
  name: z.string().max(64),
  /** The analyzer's own recommendation, or null when it failed or abstained (see `error`). */
  verdict: RecommendationSchema.nullable(),
  rule: z.string().max(500).nullable(),
  error: z.string().max(500).nullable(),
  latencyMs: z.number().nonnegative(),
});

export const WebhookEventSchema = z.discriminatedUnion('type', [
  z.object({
    ...deployment,
    type: z.literal('gate.decided'),
    decisionId: z.string().max(128),
    /** Wave number, from 1 as in the CLI. */
    wave: z.number().int().positive(),
    /** gate, early-hard-limit, monitor-limit, empty-wave, operator. */
    source: z.string().max(32),
    verdict: RecommendationSchema,
    riskLevel: RiskLevelSchema,
    rule: z.string().max(1000),
    issues: z.array(z.string().max(1000)).max(20),
    analyzers: z.array(AnalyzerSummarySchema).max(20),
  }),
  z.object({ ...deployment, type: z.literal('deployment.aborted'), actor: Actor, reason: z.string().max(1000), rollback: z.boolean() }),
  z.object({ ...deployment, type: z.literal('deployment.completed'), waves: z.number().int().nonnegative() }),
  z.object({
    ...deployment,
    type: z.literal('rollback.started'),
    actor: Actor,
    reason: z.string().max(1000),
    /** Devices sent a rollback command. */
    exposed: z.number().int().nonnegative(),
    deadlineAt: z.number().int().nonnegative(),
  }),
  z.object({
    ...deployment,
    type: z.literal('rollback.finished'),
    exposed: z.number().int().nonnegative(),
    confirmed: z.number().int().nonnegative(),
    unreachable: z.number().int().nonnegative(),
    refused: z.number().int().nonnegative(),
  }),
  z.object({ ...base, type: z.literal('webhook.test'), webhookId: z.string().max(64), message: z.string().max(500) }),
]);
export type WebhookEvent = z.infer<typeof WebhookEventSchema>;
