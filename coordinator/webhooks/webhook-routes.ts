/**
 * Admin API routes for webhooks (the admin role once roles exist; every change audited):
 *
 *   GET    /v1/webhooks                          every webhook with its last delivery and delivery counts
 *   POST   /v1/webhooks                          add {url, events?, secret?, description?} → 201 {webhook, secret}
 *   GET    /v1/webhooks/:id                      one webhook
 *   DELETE /v1/webhooks/:id                      remove it and its deliveries
 *   POST   /v1/webhooks/:id/test                 send a `webhook.test` event now, once → the attempt
 *   GET    /v1/webhooks/:id/deliveries?limit=    newest deliveries with every attempt
 */
import { z } from 'zod';
import { reply, type Router } from '../admin/router.js';
import { WebhookRequestSchema, type WebhookService } from './webhook-service.js';

export function registerWebhookRoutes(router: Router, deps: { webhooks: WebhookService }): void {
  const { webhooks } = deps;
  router.get('/v1/webhooks', {}, () => ({ webhooks: webhooks.list() }));
  router.post('/v1/webhooks', { body: WebhookRequestSchema }, ({ body, actor }) => reply(201, webhooks.add(body, actor)));
  router.get('/v1/webhooks/:id', {}, ({ params }) => webhooks.get(params['id']!));
  router.delete('/v1/webhooks/:id', {}, ({ params, actor }) => {
    webhooks.remove(params['id']!, actor);
    return undefined;
  });
  router.post('/v1/webhooks/:id/test', {}, async ({ params, actor }) => ({ result: await webhooks.test(params['id']!, actor) }));
  router.get(
    '/v1/webhooks/:id/deliveries',
    { query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(20) }) },
    ({ params, query }) => ({ deliveries: webhooks.deliveries(params['id']!, query.limit) }),
  );
}
