/** Admin API: deployments — create, list, status, operator actions, decisions, devices, snapshots. */
import { z } from 'zod';
import { DeploymentRequestSchema, OperatorActionSchema } from '../engine/types.js';
import type { DeploymentService } from '../deployments/deployment-service.js';
import { actorOf, type AdminApi } from './admin-api.js';
import { NotFoundError } from './http-errors.js';

export interface DeploymentRouteDeps {
  rollouts: DeploymentService;
}

const IdParams = z.object({ id: z.string() });

export function registerDeploymentRoutes(api: AdminApi, deps: DeploymentRouteDeps): void {
  const { rollouts } = deps;
  const find = async (id: string) => {
    const v = await rollouts.view(id);
    if (!v) throw new NotFoundError(`no deployment ${id}; list them with \`fleet deploy list\``);
    return v;
  };

  api.get(
    '/v1/deployments',
    { schema: { summary: 'deployments, newest first', querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) } },
    async ({ query }) => ({ deployments: await rollouts.list(query.limit) }),
  );

  api.post(
    '/v1/deployments',
    { config: { role: 'operator' }, schema: { summary: 'create a deployment (started unless a draft)', body: DeploymentRequestSchema } },
    async (request, reply) => reply.code(201).send(await rollouts.create(request.body, `operator:${actorOf(request)}`)),
  );

  api.get('/v1/deployments/:id', { schema: { summary: 'a deployment with its waves and decisions', params: IdParams } }, ({ params }) => find(params.id));

  // The engine records the actor of an operator action as `operator:<actor>`.
  api.post(
    '/v1/deployments/:id/actions',
    { config: { role: 'operator' }, schema: { summary: 'start, pause, resume, promote, approve, abort or roll back', params: IdParams, body: OperatorActionSchema } },
    async (request) => {
      const view = await rollouts.act(request.params.id, request.body, actorOf(request));
      return { ...view, decisions: await rollouts.decisions(view.id) };
    },
  );

  api.get('/v1/deployments/:id/decisions', { schema: { summary: "the deployment's gate decisions", params: IdParams } }, async ({ params }) => ({
    decisions: (await find(params.id)).decisions ?? [],
  }));

  api.get(
    '/v1/deployments/:id/devices',
    { schema: { summary: "the deployment's devices and their progress", params: IdParams, querystring: z.object({ wave: z.coerce.number().int().min(1).optional() }) } },
    async ({ params, query }) => {
      await find(params.id);
      return { devices: await rollouts.devices(params.id, query.wave !== undefined ? query.wave - 1 : undefined) };
    },
  );

  api.get(
    '/v1/deployments/:id/decisions/:decisionId/snapshot',
    { schema: { summary: 'the canary snapshot a gate decision was made from', params: z.object({ id: z.string(), decisionId: z.string() }) } },
    async ({ params }) => {
      const decision = (await find(params.id)).decisions?.find((d) => d.id === params.decisionId);
      if (!decision) throw new NotFoundError(`deployment ${params.id} has no decision ${params.decisionId}`);
      const snapshot = await rollouts.snapshot(decision.inputsDigest);
      if (!snapshot) throw new NotFoundError(`decision ${decision.id} was not made from a stored canary snapshot (source ${decision.source})`);
      return snapshot;
    },
  );
}
