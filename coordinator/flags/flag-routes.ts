/**
 * Admin API routes for feature flags (mounted by the coordinator shell):
 *
 *   GET    /v1/flags                      every flag (stored and well-known defaults) and the store version
 *   GET    /v1/flags/:name                one flag
 *   PUT    /v1/flags/:name                create or update (partial definition; audited)
 *   POST   /v1/flags/:name/kill           the kill switch (audited)
 *   DELETE /v1/flags/:name                delete a stored flag (a well-known flag returns to its default)
 *   GET    /v1/flags/:name/history        change history, newest first
 *   GET    /v1/flags/:name/evaluate?key=  evaluation for a key (a device id, or `deployment:wave`)
 *   GET    /v1/flags-message              the retained device-flags message as published
 */
import { z } from 'zod';
import type { Router } from '../admin/router.js';
import { NotFoundError } from '../admin/router.js';
import { FlagScopeSchema, FlagVariantSchema } from './flag-model.js';
import type { FlagStore } from './flag-store.js';

export const FlagPatchSchema = z.object({
  enabled: z.boolean().optional(),
  rollout: z.number().min(0).max(100).optional(),
  description: z.string().max(500).optional(),
  scope: FlagScopeSchema.optional(),
  groupId: z.string().min(1).max(128).optional(),
  variants: z.array(FlagVariantSchema).max(20).optional(),
  /** Why (recorded in the audit log, not in the flag). */
  reason: z.string().max(500).optional(),
}).strict();

const ReasonBodySchema = z.object({ reason: z.string().max(500).optional() });

export interface FlagRouteDeps {
  flags: FlagStore;
}

export function registerFlagRoutes(router: Router, deps: FlagRouteDeps): void {
  const { flags } = deps;
  const must = (name: string) => {
    const f = flags.effective(name);
    if (!f) throw new NotFoundError(`no flag named ${name}; run \`fleet flags list\` to see the flags`);
    return f;
  };

  router.get('/v1/flags', {}, () => ({ version: flags.version(), flags: flags.list() }));

  router.get('/v1/flags-message', {}, () => flags.deviceFlagsMessage());

  router.get('/v1/flags/:name', {}, ({ params }) => must(params['name']!));

  router.put('/v1/flags/:name', { body: FlagPatchSchema }, ({ params, body, actor }) => {
    const { reason, ...fields } = body;
    const patch = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
    return flags.set(params['name']!, patch, actor, reason);
  });

  router.post('/v1/flags/:name/kill', { body: ReasonBodySchema }, ({ params, body, actor }) => {
    must(params['name']!);
    return flags.kill(params['name']!, actor, body.reason);
  });

  router.delete('/v1/flags/:name', { query: ReasonBodySchema }, ({ params, query, actor }) => {
    if (!flags.get(params['name']!)) throw new NotFoundError(`no stored flag named ${params['name']!}`);
    flags.delete(params['name']!, actor, query.reason);
    return undefined;
  });

  router.get(
    '/v1/flags/:name/history',
    { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }) },
    ({ params, query }) => ({ changes: flags.history({ name: params['name']!, limit: query.limit }) }),
  );

  router.get('/v1/flags/:name/evaluate', { query: z.object({ key: z.string().min(1).max(256) }) }, ({ params, query }) => {
    must(params['name']!);
    return flags.evaluate(params['name']!, query.key);
  });
}
