/**
 * The operator console's routes: the built page (`/`, `/index.html`, `/assets/*`, public: it holds no
 * data and logs in through the API), the live event stream (`GET /v1/events`), and the reads only the
 * console needs — fleet counts, a device's telemetry over time, a decision's canary and control side
 * by side. Every `/v1` route is read-only (the viewer role). The page and the stream are raw Node
 * handlers mounted with {@link mountRaw}; the reads are ordinary routes whose answers are the zod
 * schemas of protocol/console.ts.
 */
import { z } from 'zod';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import { CohortSeriesSchema, DeviceTelemetrySchema, FleetSummarySchema, MAX_SERIES_SLOTS } from '@fleet/protocol/console';
import { mountRaw, sourceOf, type AdminApi } from '../admin/admin-api.js';
import { NotFoundError } from '../admin/http-errors.js';
import type { Authenticator } from '../users/access.js';
import { cohortSeries } from './cohort-series.js';
import type { DeviceTelemetryReader } from './device-telemetry.js';
import type { EventStream } from './event-stream.js';
import { fleetSummary, type SummaryDevice } from './fleet-summary.js';
import type { StaticConsole } from './static-console.js';

export interface ConsoleRouteDeps {
  page: StaticConsole;
  events: EventStream;
  /** Re-checks an open stream's credentials at every ping: a logout or a removed user ends it. */
  authenticator: Authenticator;
  devices: { all(): Iterable<SummaryDevice>; get(id: string): unknown };
  anomalies: { list(filter: { limit: number }): readonly { deviceId: string; kind: string }[] } | undefined;
  telemetry: DeviceTelemetryReader;
  deployments: {
    view(id: string): Promise<{ decisions?: readonly { id: string; inputsDigest: string; source: string }[] } | undefined>;
    snapshot(digest: string): Promise<CanarySnapshot | undefined>;
  };
  now: () => number;
}

const Time = z.coerce.number().int().min(0).max(8.64e15);
const TelemetryQuery = z.object({
  from: Time.optional(),
  to: Time.optional(),
  slots: z.coerce.number().int().min(1).max(MAX_SERIES_SLOTS).optional(),
});
const IdParams = z.object({ id: z.string() });
const DecisionParams = z.object({ id: z.string(), decisionId: z.string() });

export function registerConsoleRoutes(api: AdminApi, deps: ConsoleRouteDeps): void {
  // The page: public, left out of the API's OpenAPI document. The path comes from the URL itself
  // (query string dropped); only files of the build are ever answered.
  for (const url of ['/', '/index.html', '/assets/*']) {
    mountRaw(api, { method: 'GET', url, config: { public: true }, summary: 'the operator console', hide: true }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (!deps.page.serve(req, res, path)) throw new NotFoundError(`no console file ${path}; rebuild the console with \`npm run build\``);
    });
  }

  mountRaw(api, { method: 'GET', url: '/v1/events', summary: 'the live feed (Server-Sent Events): deployment, decision, device, audit, clock' }, (req, res, principal) => {
    const stillAllowed = (): Promise<boolean> =>
      deps.authenticator.authenticate({ method: 'GET', headers: req.headers, source: sourceOf(req) }).then(
        () => true,
        () => false,
      );
    deps.events.handle(req, res, principal?.name, stillAllowed);
  });

  api.get('/v1/fleet/summary', { schema: { summary: 'device counts by hardware model, version, update state and anomaly', response: { 200: FleetSummarySchema } } }, () =>
    fleetSummary(deps.devices.all(), deps.anomalies?.list({ limit: 1_000_000 }) ?? [], deps.now()),
  );

  api.get(
    '/v1/devices/:id/telemetry',
    { schema: { summary: "a device's telemetry rollups over time, its versions and last error log", params: IdParams, querystring: TelemetryQuery, response: { 200: DeviceTelemetrySchema } } },
    ({ params, query }) => {
      if (!deps.devices.get(params.id)) throw new NotFoundError(`no device ${params.id}; list devices with \`fleet devices list\``);
      return deps.telemetry.read(params.id, query, deps.now());
    },
  );

  api.get(
    '/v1/deployments/:id/decisions/:decisionId/cohorts',
    { schema: { summary: 'canary against control over the window a gate decision judged', params: DecisionParams, response: { 200: CohortSeriesSchema } } },
    async ({ params }) => {
      const view = await deps.deployments.view(params.id);
      if (!view) throw new NotFoundError(`no deployment ${params.id}; list them with \`fleet deploy list\``);
      const decision = view.decisions?.find((d) => d.id === params.decisionId);
      if (!decision) throw new NotFoundError(`deployment ${params.id} has no decision ${params.decisionId}`);
      const snapshot = await deps.deployments.snapshot(decision.inputsDigest);
      if (!snapshot) throw new NotFoundError(`decision ${decision.id} was not made from a stored canary snapshot (source ${decision.source}): there is no canary and control to compare`);
      return cohortSeries(snapshot, decision.id);
    },
  );
}
