/**
 * Who is acting in the current request, for the audit log. The admin API runs each route handler
 * inside {@link auditContext}; audit entries appended while it runs (by the route, the flag store or
 * the rollout engine carrying out the operator's action) record the user, role and source address
 * without every layer in between passing them along. I/O-free (node:async_hooks).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface AuditWho {
  /** The signed-in user's name. */
  user: string;
  role: string;
  /** The request's remote address. */
  source: string;
}

export const auditContext = new AsyncLocalStorage<AuditWho>();

/**
 * The current request's user when `actor` is that user acting (`alice`, or `operator:alice` as the
 * engine writes it); undefined otherwise, so the gate's or the engine's own entries, even when an
 * operator's action set them off, never carry the operator's name.
 */
export function whoFor(actor: string): AuditWho | undefined {
  const who = auditContext.getStore();
  if (!who) return undefined;
  return actor === who.user || actor === `operator:${who.user}` ? who : undefined;
}
