/** Admin API: health (no token), counters and the audit log. */
import { z } from 'zod';
import type { AuditLog } from '../store/audit-log.js';
import type { Router } from './router.js';
import { definedProps } from '../../firmware/defined-props.js';

export interface SystemRouteDeps {
  env: string;
  version: string;
  startedAt: number;
  now: () => number;
  metrics: () => Record<string, unknown>;
  auditLog: AuditLog;
  endpoints: () => { mqttUrl: string; httpUrl: string };
}

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

  router.get(
    '/v1/audit',
    { query: z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(100), subject: z.string().max(128).optional() }) },
    ({ query }) => ({
      entries: deps.auditLog.list({ limit: query.limit, ...definedProps({ subject: query.subject }) }),
    }),
  );
}
