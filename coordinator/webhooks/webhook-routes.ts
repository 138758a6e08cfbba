/**
 * Admin API routes for webhooks (admin role; every change audited):
 *
 *   GET    /v1/webhooks                          every webhook with its last delivery and delivery counts
 *   POST   /v1/webhooks                          add {url, events?, secret?, description?} → 201 {webhook, secret}
 *   GET    /v1/webhooks/:id                      one webhook
 *   DELETE /v1/webhooks/:id                      remove it and its deliveries
 *   POST   /v1/webhooks/:id/test                 send a `webhook.test` event now, once → the attempt
 *   GET    /v1/webhooks/:id/deliveries?limit=    newest deliveries with every attempt
 */
import { z } from 'zod';
import { actorOf, type AdminApi } from '../admin/admin-api.js';
import { WebhookRequestSchema, type WebhookService } from './webhook-service.js';

const IdParams = z.object({ id: z.string() });

export function registerWebhookRoutes(api: AdminApi, deps: { webhooks: WebhookService }): void {
  const { webhooks } = deps;
  api.get('/v1/webhooks', { schema: { summary: 'webhooks with their last delivery and counts' } }, async () => ({ webhooks: await webhooks.list() }));
  api.post('/v1/webhooks', { schema: { summary: 'add a webhook; answers its signing secret, shown once', body: WebhookRequestSchema } }, async (request, reply) =>
    reply.code(201).send(await webhooks.add(request.body, actorOf(request))),
  );
  api.get('/v1/webhooks/:id', { schema: { summary: 'one webhook', params: IdParams } }, ({ params }) => webhooks.get(params.id));
  api.delete('/v1/webhooks/:id', { schema: { summary: 'remove a webhook and its deliveries', params: IdParams } }, async (request, reply) => {
    await webhooks.remove(request.params.id, actorOf(request));
    return reply.code(204).send();
  });
  api.post('/v1/webhooks/:id/test', { schema: { summary: 'send a webhook.test event now, once', params: IdParams } }, async (request) => ({
    result: await webhooks.test(request.params.id, actorOf(request)),
  }));
  api.get(
    '/v1/webhooks/:id/deliveries',
    { schema: { summary: 'newest deliveries with every attempt', params: IdParams, querystring: z.object({ limit: z.coerce.number().int().min(1).max(500).default(20) }) } },
    async ({ params, query }) => ({ deliveries: await webhooks.deliveries(params.id, query.limit) }),
  );
}
