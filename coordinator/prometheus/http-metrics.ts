/**
 * HTTP request latency for Prometheus: `fleet_http_request_duration_seconds{route, method, status}`,
 * from the request's arrival until its response was sent (or its connection closed). `route` is the
 * pattern the router matched (`/v1/deployments/:id`), `/artifacts/:sha256` for downloads, `unmatched`
 * for anything else: a raw path would make a series per device, deployment and typo. Whatever router
 * serves the API calls `matched(req, pattern)` once it knows the route. I/O shell (prom-client).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Histogram, type Registry } from 'prom-client';

/** Buckets (seconds): API calls take milliseconds, downloads of large images minutes. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
export const UNMATCHED_ROUTE = 'unmatched';

export class HttpRequestMetrics {
  private readonly routes = new WeakMap<IncomingMessage, string>();

  private constructor(
    private readonly histogram: Histogram<'route' | 'method' | 'status'>,
    private readonly monotonicMs: () => number,
  ) {}

  /** Registers the histogram. `monotonicMs`: a monotonic time in ms (default performance.now). */
  static create(registry: Registry, monotonicMs: () => number = () => performance.now()): HttpRequestMetrics {
    const histogram = new Histogram({
      name: 'fleet_http_request_duration_seconds',
      help: 'HTTP requests (admin API, metrics and artifact downloads) by route pattern, method and status, until the response was sent.',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: BUCKETS,
      registers: [registry],
    });
    return new HttpRequestMetrics(histogram, monotonicMs);
  }

  /** The router found the route for `req` (its pattern, not the path). */
  readonly matched = (req: IncomingMessage, pattern: string): void => {
    this.routes.set(req, pattern);
  };

  /** Times `req` until its response is done; call on arrival. */
  track(req: IncomingMessage, res: ServerResponse): void {
    const started = this.monotonicMs();
    res.once('close', () => {
      const method = req.method !== undefined && METHODS.has(req.method) ? req.method : 'OTHER';
      const route = this.routes.get(req) ?? UNMATCHED_ROUTE;
      this.histogram.observe({ route, method, status: String(res.statusCode) }, (this.monotonicMs() - started) / 1000);
    });
  }
}
