/**
 * The coordinator's one HTTP listener: artifact downloads under /artifacts/, the admin API under /v1/.
 * I/O shell (node:http).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FleetError } from '../../protocol/errors.js';
import type { ArtifactServer } from '../artifacts/artifact-server.js';
import type { Router } from './router.js';

export class HttpServer {
  private server: Server | undefined;
  private boundPort = 0;

  constructor(
    private readonly router: Router,
    private readonly artifacts: ArtifactServer,
    private readonly host: string,
    private readonly port: number,
  ) {}

  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.boundPort}`;
  }

  get portNumber(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => {
      if (!this.artifacts.handle(req, res)) this.router.handle(req, res);
    });
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

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
