/**
 * Serves artifact images over HTTP for device downloads: `GET|HEAD /artifacts/<sha256>` with single
 * Range requests (206, 416), a strong ETag (the sha256), If-None-Match and If-Range so an interrupted
 * download resumes only against the same bytes, and a bound on concurrent downloads (503 with
 * Retry-After beyond it, which agents treat as "retry later"). Downloads need no token: images are
 * public and devices verify them against the signed manifest. I/O shell (node:http, fs).
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Counters } from '../metrics.js';
import type { ArtifactStore } from './artifact-store.js';

export const ARTIFACT_PATH_PREFIX = '/artifacts/';

export interface ArtifactServerOptions {
  maxConcurrent: number;
  /** Seconds a refused client should wait. Default 5. */
  retryAfterS?: number;
}

/** Parses a single `bytes=` range against a size; null when unsatisfiable, undefined when absent/ignored. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // multiple ranges or other units: serve the whole image (RFC 9110 allows it)
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start >= size || start > end) return null;
  return { start, end };
}

export class ArtifactServer {
  private active = 0;

  constructor(
    private readonly store: ArtifactStore,
    private readonly counters: Counters,
    private readonly options: ArtifactServerOptions,
  ) {}

  get activeDownloads(): number {
    return this.active;
  }

  /** Handles the request if it is for an artifact; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0]!;
    if (!path.startsWith(ARTIFACT_PATH_PREFIX)) return false;
    void this.serve(path.slice(ARTIFACT_PATH_PREFIX.length), req, res);
    return true;
  }

  private async serve(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = (status: number, body: string, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(body + '\n');
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'only GET and HEAD', { allow: 'GET, HEAD' });
    if (!/^[0-9a-f]{64}$/.test(id)) return text(404, 'no such artifact');
    const size = await this.store.fileSize(id);
    if (size === undefined) return text(404, 'no such artifact');
    const etag = `"${id}"`;
    const common = {
      etag,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      // Content-addressed: the bytes behind a name never change.
      'cache-control': 'public, max-age=31536000, immutable',
    };
    const inm = req.headers['if-none-match'];
    if (inm && (inm === '*' || inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag))) {
      res.writeHead(304, common).end();
      return;
    }
    let range = parseRange(req.headers.range, size);
    const ifRange = req.headers['if-range'];
    // If-Range with another validator: the client's partial copy is stale, send everything.
    if (range !== undefined && ifRange !== undefined && ifRange !== etag) range = undefined;
    if (range === null) {
      res.writeHead(416, { ...common, 'content-range': `bytes */${size}` }).end();
      return;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, { ...common, 'content-length': size }).end();
      return;
    }
    if (this.active >= this.options.maxConcurrent) {
      this.counters.inc('artifacts.refused-busy');
      return text(503, 'too many downloads in progress; retry later', { 'retry-after': String(this.options.retryAfterS ?? 5) });
    }
    this.active++;
    this.counters.inc('artifacts.downloads');
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.active--;
    };
    res.once('close', release);
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    res.writeHead(range ? 206 : 200, {
      ...common,
      'content-length': end - start + 1,
      ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    const stream = createReadStream(this.store.pathOf(id), { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }
}
