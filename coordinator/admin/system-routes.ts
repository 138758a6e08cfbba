/** Admin API: health (no token), the coordinator's endpoints, counters and the audit log. */
import { z } from 'zod';
import type { AuditLog } from '../store/audit-log.js';
import type { AdminApi } from './admin-api.js';
import { definedProps } from '@fleet/firmware/defined-props';

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

export function registerSystemRoutes(api: AdminApi, deps: SystemRouteDeps): void {
  api.get('/v1/health', { config: { public: true }, schema: { summary: 'liveness, without credentials' } }, () => ({ ok: true, env: deps.env, version: deps.version }));

  api.get('/v1/info', { schema: { summary: "the coordinator's version and endpoints" } }, () => ({
    env: deps.env,
    version: deps.version,
    startedAt: deps.startedAt,
    now: deps.now(),
    ...deps.endpoints(),
  }));

  api.get('/v1/metrics', { schema: { summary: 'counters since this start and over every run' } }, () => deps.metrics());

  api.get('/v1/audit', { schema: { summary: 'the audit log, newest first', querystring: AuditQuerySchema } }, async ({ query }) => ({
    entries: await deps.auditLog.list({
      limit: query.limit,
      ...definedProps({ subject: query.subject, user: query.user, beforeId: query.before }),
    }),
  }));
}
