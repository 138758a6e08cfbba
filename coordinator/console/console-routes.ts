/**
 * The operator console's routes: the built page (`/`, `/index.html`, `/assets/*`, no token: it holds
 * no data and logs in through the API), the live event stream (`GET /v1/events`), and the reads only
 * the console needs — fleet counts, a device's telemetry over time, a decision's canary and control
 * side by side. Every `/v1` route is read-only (the viewer role).
 */
import { z } from 'zod';
import type { CanarySnapshot } from '../../protocol/canary.js';
import { MAX_SERIES_SLOTS } from '../../protocol/console.js';
import { NotFoundError, type Router } from '../admin/router.js';
import { cohortSeries } from './cohort-series.js';
import type { DeviceTelemetryReader } from './device-telemetry.js';
import type { EventStream } from './event-stream.js';
import { fleetSummary, type SummaryDevice } from './fleet-summary.js';
import type { StaticConsole } from './static-console.js';

export interface ConsoleRouteDeps {
  page: StaticConsole;
  events: EventStream;
  devices: { all(): Iterable<SummaryDevice>; get(id: string): unknown };
  anomalies: { list(filter: { limit: number }): readonly { deviceId: string; kind: string }[] } | undefined;
  telemetry: DeviceTelemetryReader;
  deployments: {
    view(id: string): { decisions?: readonly { id: string; inputsDigest: string; source: string }[] } | undefined;
    snapshot(digest: string): CanarySnapshot | undefined;
  };
  now: () => number;
}

const Time = z.coerce.number().int().min(0).max(8.64e15);
const TelemetryQuery = z.object({
  from: Time.optional(),
  to: Time.optional(),
  slots: z.coerce.number().int().min(1).max(MAX_SERIES_SLOTS).optional(),
});

export function registerConsoleRoutes(router: Router, deps: ConsoleRouteDeps): void {
  const page = (path: string) => ({ req, res }: { req: Parameters<StaticConsole['serve']>[0]; res: Parameters<StaticConsole['serve']>[1] }) => {
    if (!deps.page.serve(req, res, path)) throw new NotFoundError(`no console file ${path}; rebuild the console with \`npm run build\``);
    return undefined;
  };
  router.get('/', { auth: false }, page('/'));
  router.get('/index.html', { auth: false }, page('/index.html'));
  router.get('/assets/:file', { auth: false }, (ctx) => page(`/assets/${ctx.params['file']!}`)(ctx));

  router.get('/v1/events', {}, ({ req, res, actor }) => {
    deps.events.handle(req, res, actor);
    return undefined;
  });

  router.get('/v1/fleet/summary', {}, () => fleetSummary(deps.devices.all(), deps.anomalies?.list({ limit: 1_000_000 }) ?? [], deps.now()));

  router.get('/v1/devices/:id/telemetry', { query: TelemetryQuery }, ({ params, query }) => {
    const id = params['id']!;
    if (!deps.devices.get(id)) throw new NotFoundError(`no device ${id}; list devices with \`fleet devices list\``);
    return deps.telemetry.read(id, query, deps.now());
  });

  router.get('/v1/deployments/:id/decisions/:decisionId/cohorts', {}, ({ params }) => {
    const id = params['id']!;
    const view = deps.deployments.view(id);
    if (!view) throw new NotFoundError(`no deployment ${id}; list them with \`fleet deploy list\``);
    const decision = view.decisions?.find((d) => d.id === params['decisionId']);
    if (!decision) throw new NotFoundError(`deployment ${id} has no decision ${params['decisionId']}`);
    const snapshot = deps.deployments.snapshot(decision.inputsDigest);
    if (!snapshot) throw new NotFoundError(`decision ${decision.id} was not made from a stored canary snapshot (source ${decision.source}): there is no canary and control to compare`);
    return cohortSeries(snapshot, decision.id);
  });
}
