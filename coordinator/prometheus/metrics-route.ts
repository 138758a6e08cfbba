/**
 * `GET /metrics`: the Prometheus exposition, outside `/v1` where scrapers look for it. It needs a
 * bearer token like every read of the admin API (Prometheus sends one with `authorization:
 * {credentials_file: …}` in its scrape config), unless the operator opens it with
 * `FLEET_METRICS_PUBLIC=1` for a scraper that cannot hold a secret: the series carry counts,
 * deployment ids and firmware versions, never a device id or a secret. I/O shell.
 */
import { mountRaw, type AdminApi } from '../admin/admin-api.js';
import type { FleetMetrics } from './fleet-metrics.js';

export const METRICS_PATH = '/metrics';

export function registerMetricsRoute(api: AdminApi, deps: { metrics: FleetMetrics; public: boolean }): void {
  mountRaw(api, { method: 'GET', url: METRICS_PATH, config: { public: deps.public }, summary: 'Prometheus exposition of the coordinator and fleet metrics' }, async (_req, res) => {
    const { contentType, body } = await deps.metrics.scrape();
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  });
}
