/**
 * Download fault injection: a small HTTP proxy in front of the coordinator's artifact server that can
 * throttle a transfer (slow links, in simulated time), cut it off part-way (the agent must resume with
 * a Range request) or flip a byte (the agent must refuse the image before any slot write). Agents reach
 * it through a downloader decorator that rewrites the artifact URL; the signed manifest is untouched.
 * I/O shell.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '@fleet/protocol/clock';

export type DownloadFault =
  | { kind: 'pass' }
  | { kind: 'throttle'; kibps: number }
  | { kind: 'cut'; afterBytes: number }
  | { kind: 'corrupt' };

export interface FaultCounts {
  proxied: number;
  cut: number;
  corrupted: number;
  throttled: number;
}

function encodeFault(f: DownloadFault): string {
  switch (f.kind) {
    case 'pass':
      return 'pass';
    case 'throttle':
      return `throttle-${f.kibps}`;
    case 'cut':
      return `cut-${f.afterBytes}`;
    case 'corrupt':
      return 'corrupt';
  }
}

function decodeFault(text: string): DownloadFault {
  if (text.startsWith('throttle-')) return { kind: 'throttle', kibps: Number(text.slice(9)) || 64 };
  if (text.startsWith('cut-')) return { kind: 'cut', afterBytes: Number(text.slice(4)) || 0 };
  if (text === 'corrupt') return { kind: 'corrupt' };
  return { kind: 'pass' };
}

/** The proxy. `urlFor` builds the URL a device should fetch instead of `original`. */
export class DownloadFaultProxy {
  private server: http.Server | undefined;
  private base = '';
  readonly counts: FaultCounts = { proxied: 0, cut: 0, corrupted: 0, throttled: 0 };

  constructor(private readonly clock: Clock) {}

  async start(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  urlFor(original: string, fault: DownloadFault): string {
    if (fault.kind === 'pass') return original;
    return `${this.base}/${encodeFault(fault)}/${encodeURIComponent(original)}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const [, mode = 'pass', encoded = ''] = (req.url ?? '').split('/');
    let target: URL;
    try {
      target = new URL(decodeURIComponent(encoded));
    } catch {
      res.writeHead(400).end('bad proxy url');
      return;
    }
    const fault = decodeFault(mode);
    this.counts.proxied++;
    const headers: Record<string, string> = {};
    if (typeof req.headers.range === 'string') headers['range'] = req.headers.range;
    if (typeof req.headers['if-range'] === 'string') headers['if-range'] = req.headers['if-range'];
    if (typeof req.headers.authorization === 'string') headers['authorization'] = req.headers.authorization;
    const upstream = http.get(target, { headers }, (up) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined) out[k] = v;
      res.writeHead(up.statusCode ?? 502, out);
      void this.relay(up, res, fault).catch(() => res.destroy());
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.destroy();
    });
    req.on('close', () => upstream.destroy());
  }

  private async relay(up: IncomingMessage, res: ServerResponse, fault: DownloadFault): Promise<void> {
    let sent = 0;
    let flipped = false;
    if (fault.kind === 'throttle') this.counts.throttled++;
    for await (const raw of up) {
      let chunk = raw as Buffer;
      if (fault.kind === 'cut' && sent + chunk.length > fault.afterBytes) {
        const keep = Math.max(0, fault.afterBytes - sent);
        if (keep > 0) res.write(chunk.subarray(0, keep));
        this.counts.cut++;
        // Cut the connection mid-body: the client sees a premature close, as on a dropped link.
        up.destroy();
        res.destroy();
        return;
      }
      if (fault.kind === 'corrupt' && !flipped && chunk.length > 0) {
        chunk = Buffer.from(chunk);
        const i = Math.floor(chunk.length / 2);
        chunk[i] = (chunk[i] ?? 0) ^ 0xff;
        flipped = true;
        this.counts.corrupted++;
      }
      if (fault.kind === 'throttle') {
        await this.clock.sleep((chunk.length / (fault.kibps * 1024)) * 1000);
      }
      sent += chunk.length;
      if (!res.write(chunk)) await new Promise<void>((resolve) => res.once('drain', resolve));
    }
    res.end();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
