/** Admin API: deployments — create, list, status, operator actions, decisions, devices, snapshots. */
import { z } from 'zod';
import { DeploymentRequestSchema, OperatorActionSchema } from '../engine/types.js';
import type { RolloutService } from '../wiring/rollout-service.js';
import { NotFoundError, reply, type Router } from './router.js';

export interface DeploymentRouteDeps {
  rollouts: RolloutService;
}

export function registerDeploymentRoutes(router: Router, deps: DeploymentRouteDeps): void {
  const { rollouts } = deps;
  const find = (id: string) => {
    const v = rollouts.view(id);
    if (!v) throw new NotFoundError(`no deployment ${id}; list them with \`fleet deploy list\``);
    return v;
  };

  router.get('/v1/deployments', { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) }, ({ query }) => ({
    deployments: rollouts.list(query.limit),
  }));

  router.post('/v1/deployments', { body: DeploymentRequestSchema, role: 'operator' }, async ({ body, actor }) => reply(201, await rollouts.create(body, `operator:${actor}`)));

  router.get('/v1/deployments/:id', {}, ({ params }) => find(params['id']!));

  // The engine records the actor of an operator action as `operator:<actor>`.
  router.post('/v1/deployments/:id/actions', { body: OperatorActionSchema, role: 'operator' }, async ({ params, body, actor }) => {
    const view = await rollouts.act(params['id']!, body, actor);
    return { ...view, decisions: rollouts.decisions(view.id) };
  });

  router.get('/v1/deployments/:id/decisions', {}, ({ params }) => ({ decisions: find(params['id']!).decisions ?? [] }));

  router.get(
    '/v1/deployments/:id/devices',
    { query: z.object({ wave: z.coerce.number().int().min(1).optional() }) },
    ({ params, query }) => {
      find(params['id']!);
      return { devices: rollouts.devices(params['id']!, query.wave !== undefined ? query.wave - 1 : undefined) };
    },
  );

  router.get('/v1/deployments/:id/decisions/:decisionId/snapshot', {}, ({ params }) => {
    const decision = find(params['id']!).decisions?.find((d) => d.id === params['decisionId']);
    if (!decision) throw new NotFoundError(`deployment ${params['id']} has no decision ${params['decisionId']}`);
    const snapshot = rollouts.snapshot(decision.inputsDigest);
    if (!snapshot) throw new NotFoundError(`decision ${decision.id} was not made from a stored canary snapshot (source ${decision.source})`);
    return snapshot;
  });
}
