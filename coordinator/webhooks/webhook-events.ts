/**
 * What the coordinator tells webhooks: each decision the engine records becomes `gate.decided`; the
 * engine's audit entries for an abort, a completion and a rollback's start and end become their
 * events. Everything else the engine audits is not a webhook event. Pure.
 */
import type { WebhookEvent } from '@fleet/protocol/webhooks';
import type { DecisionRecord } from '../gate/decision.js';
import type { AuditEntry } from '../engine/types.js';

const MAX_ISSUES = 20;
const cut = (s: string, n: number): string => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
const str = (v: unknown, fallback = ''): string => (typeof v === 'string' ? cut(v, 1000) : fallback);

/** The `gate.decided` event for a recorded decision. */
export function decisionEvent(d: DecisionRecord, id: string): WebhookEvent {
  return {
    v: 1,
    id,
    at: d.at,
    type: 'gate.decided',
    deploymentId: d.deploymentId,
    decisionId: d.id,
    wave: d.wave + 1,
    source: d.source,
    verdict: d.final.recommendation,
    riskLevel: d.final.riskLevel,
    rule: cut(d.final.rule, 1000),
    issues: d.final.issues.slice(0, MAX_ISSUES).map((i) => cut(i, 1000)),
    analyzers: d.analyzers.slice(0, 20).map((a) => ({
      name: cut(a.name, 64),
      verdict: a.verdict?.recommendation ?? null,
      rule: a.verdict ? cut(a.verdict.rule, 500) : null,
      error: a.error ? cut(`${a.error.code}: ${a.error.message}`, 500) : null,
      latencyMs: a.latencyMs,
    })),
  };
}

/** The event for an engine audit entry, or undefined when it is not one webhooks hear about. */
export function auditEvent(e: AuditEntry, id: string): WebhookEvent | undefined {
  const common = { v: 1 as const, id, at: e.at, deploymentId: e.deploymentId };
  const d = e.detail;
  switch (e.action) {
    case 'deployment.aborted':
      return { ...common, type: 'deployment.aborted', actor: cut(e.actor, 128), reason: str(d['reason']), rollback: d['rollback'] === true };
    case 'deployment.completed':
      return { ...common, type: 'deployment.completed', waves: num(d['waves']) };
    case 'deployment.rollback-started':
      return { ...common, type: 'rollback.started', actor: cut(e.actor, 128), reason: str(d['reason']), exposed: num(d['exposed']), deadlineAt: num(d['deadlineAt']) };
    case 'deployment.rolled-back':
      return { ...common, type: 'rollback.finished', exposed: num(d['exposed']), confirmed: num(d['confirmed']), unreachable: num(d['unreachable']), refused: num(d['refused']) };
    default:
      return undefined;
  }
}
