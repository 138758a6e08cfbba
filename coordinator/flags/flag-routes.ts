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
 *
 * Reads load the flags from the store first: coordinators sharing one store answer alike.
 */
import { z } from 'zod';
import { actorOf, type AdminApi } from '../admin/admin-api.js';
import { NotFoundError } from '../admin/http-errors.js';
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

const NameParams = z.object({ name: z.string() });

export function registerFlagRoutes(api: AdminApi, deps: FlagRouteDeps): void {
  const { flags } = deps;
  const must = async (name: string) => {
    await flags.reload();
    const f = flags.effective(name);
    if (!f) throw new NotFoundError(`no flag named ${name}; run \`fleet flags list\` to see the flags`);
    return f;
  };

  api.get('/v1/flags', { schema: { summary: 'every flag and the store version' } }, async () => {
    await flags.reload();
    return { version: flags.version(), flags: flags.list() };
  });

  api.get('/v1/flags-message', { schema: { summary: 'the retained device-flags message as published' } }, async () => {
    await flags.reload();
    return flags.deviceFlagsMessage();
  });

  api.get('/v1/flags/:name', { schema: { summary: 'one flag', params: NameParams } }, ({ params }) => must(params.name));

  api.put('/v1/flags/:name', { schema: { summary: 'create or update a flag', params: NameParams, body: FlagPatchSchema } }, async (request) => {
    const { reason, ...fields } = request.body;
    const patch = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
    return await flags.set(request.params.name, patch, actorOf(request), reason);
  });

  api.post('/v1/flags/:name/kill', { schema: { summary: 'the kill switch', params: NameParams, body: ReasonBodySchema } }, async (request) => {
    await must(request.params.name);
    return await flags.kill(request.params.name, actorOf(request), request.body.reason);
  });

  api.delete('/v1/flags/:name', { schema: { summary: 'delete a stored flag', params: NameParams, querystring: ReasonBodySchema } }, async (request, reply) => {
    await flags.reload();
    if (!flags.get(request.params.name)) throw new NotFoundError(`no stored flag named ${request.params.name}`);
    await flags.delete(request.params.name, actorOf(request), request.query.reason);
    return reply.code(204).send();
  });

  api.get(
    '/v1/flags/:name/history',
    { schema: { summary: "a flag's changes, newest first", params: NameParams, querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }) } },
    async ({ params, query }) => ({ changes: await flags.history({ name: params.name, limit: query.limit }) }),
  );

  api.get(
    '/v1/flags/:name/evaluate',
    { schema: { summary: 'evaluate a flag for a key (a device id, or deployment:wave)', params: NameParams, querystring: z.object({ key: z.string().min(1).max(256) }) } },
    async ({ params, query }) => {
      await must(params.name);
      return flags.evaluate(params.name, query.key);
    },
  );
}
