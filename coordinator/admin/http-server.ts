/**
 * The coordinator's one HTTP listener: artifact downloads under /artifacts/ (served raw, before the
 * framework sees the request: their auth, slots and timeouts are artifact-server.ts's own), the admin
 * API (admin-api.ts, Fastify) for everything else. HTTPS when a certificate and key are given (both
 * paths then travel encrypted: the operator tokens and the images). I/O shell (node:http, node:https).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import type { ArtifactServer } from '../artifacts/artifact-server.js';
import type { HttpRequestMetrics } from '../prometheus/http-metrics.js';

/** What the listener needs of the admin API: Fastify's request handler, once it is ready. */
export interface ApiHandler {
  ready(): PromiseLike<unknown>;
  routing(req: IncomingMessage, res: ServerResponse): void;
  close(): PromiseLike<unknown>;
}

/** PEM files for HTTPS. The certificate file may hold the chain (leaf first). */
export interface HttpTlsFiles {
  certPath: string;
  keyPath: string;
}

export class HttpServer {
  private server: Server | undefined;
  private stopped = false;
  private boundPort = 0;

  constructor(
    private readonly api: ApiHandler,
    private readonly artifacts: ArtifactServer,
    private readonly host: string,
    private readonly port: number,
    private readonly tls?: HttpTlsFiles,
    /** Request latency by route (Prometheus); none when absent. */
    private readonly requests?: HttpRequestMetrics,
  ) {}

  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${this.tls ? 'https' : 'http'}://${host}:${this.boundPort}`;
  }

  get portNumber(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.server) return;
    await this.api.ready();
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      this.requests?.track(req, res);
      if (this.artifacts.handle(req, res)) this.requests?.matched(req, '/artifacts/:sha256');
      else this.api.routing(req, res);
    };
    const server = this.tls ? this.createHttps(this.tls, listener) : createServer(listener);
    // Long downloads on slow links: no overall request timeout, but idle sockets are dropped.
    server.requestTimeout = 0;
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: Error) =>
        reject(new FleetError('http-listen', `cannot listen on ${this.host}:${this.port}: ${err.message}; choose another --http-port`)),
      );
      server.listen(this.port, this.host, () => resolve());
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
  }

  private createHttps(tls: HttpTlsFiles, listener: (req: IncomingMessage, res: ServerResponse) => void): Server {
    const read = (path: string, what: string): Buffer => {
      try {
        return readFileSync(path);
      } catch (err) {
        throw new FleetError('http-tls', `cannot read the HTTPS ${what} ${path}: ${errorMessage(err)}; check FLEET_HTTP_TLS_CERT and FLEET_HTTP_TLS_KEY`, { cause: err });
      }
    };
    const cert = read(tls.certPath, 'certificate');
    const key = read(tls.keyPath, 'key');
    try {
      return createHttpsServer({ cert, key }, listener);
    } catch (err) {
      throw new FleetError('http-tls', `HTTPS certificate ${tls.certPath} and key ${tls.keyPath} are unusable: ${errorMessage(err)}; they must be PEM and belong together (docs/tls.md)`, { cause: err });
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await this.api.close();
  }
}
