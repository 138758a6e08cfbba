/**
 * `GET /metrics`: the Prometheus exposition, outside `/v1` where scrapers look for it. It needs a
 * bearer token like every read of the admin API (Prometheus sends one with `authorization:
 * {credentials_file: …}` in its scrape config), unless the operator opens it with
 * `FLEET_METRICS_PUBLIC=1` for a scraper that cannot hold a secret: the series carry counts,
 * deployment ids and firmware versions, never a device id or a secret. I/O shell.
 */
import type { Router } from '../admin/router.js';
import type { FleetMetrics } from './fleet-metrics.js';

export const METRICS_PATH = '/metrics';

export function registerMetricsRoute(router: Router, deps: { metrics: FleetMetrics; public: boolean }): void {
  router.get(METRICS_PATH, { auth: !deps.public }, async ({ res }) => {
    const { contentType, body } = await deps.metrics.scrape();
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  });
}
