/** Admin API: health (no token), counters and the audit log. */
import { z } from 'zod';
import type { AuditLog } from '../store/audit-log.js';
import type { Router } from './router.js';

export interface SystemRouteDeps {
  env: string;
  version: string;
  startedAt: number;
  now: () => number;
  metrics: () => Record<string, unknown>;
  auditLog: AuditLog;
  endpoints: () => { mqttUrl: string; httpUrl: string };
}

const AuditQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
  /** Entries about one subject: a deployment id, a device, a user, a flag. */
  subject: z.string().max(128).optional(),
  /** Entries made by one signed-in user. */
  user: z.string().max(64).optional(),
  /** Entries older than this entry id (paging). */
  before: z.coerce.number().int().positive().optional(),
});

export function registerSystemRoutes(router: Router, deps: SystemRouteDeps): void {
  router.get('/v1/health', { auth: false }, () => ({ ok: true, env: deps.env, version: deps.version }));

  router.get('/v1/info', {}, () => ({
    env: deps.env,
    version: deps.version,
    startedAt: deps.startedAt,
    now: deps.now(),
    ...deps.endpoints(),
  }));

  router.get('/v1/metrics', {}, () => deps.metrics());

  router.get('/v1/audit', { query: AuditQuerySchema }, ({ query }) => ({
    entries: deps.auditLog.list({
      limit: query.limit,
      ...(query.subject !== undefined ? { subject: query.subject } : {}),
      ...(query.user !== undefined ? { user: query.user } : {}),
      ...(query.before !== undefined ? { beforeId: query.before } : {}),
    }),
  }));
}
