/**
 * Serves artifact images over HTTP for device downloads: `GET|HEAD /artifacts/<sha256>` with single
 * Range requests (206, 416), a strong ETag (the sha256), If-None-Match and If-Range so an interrupted
 * download resumes only against the same bytes.
 *
 * Downloads are bounded so that the server never wedges: each device authenticates (download-auth.ts)
 * and may hold `maxPerDevice` downloads (429 beyond), all devices together `maxConcurrent`; beyond that
 * up to `maxQueued` requests wait, first come first served, for at most `queueWaitMs`, and the rest
 * get 503 with Retry-After, which agents treat as "retry later"; a client that stops reading for
 * `idleTimeoutMs`, or reads slower than `minBytesPerSecond` over a window, is dropped (transfer-watch.ts).
 * A slot is taken only after every asynchronous step (credentials, integrity check) and released on
 * every way out — finished, failed, or a client gone at any point. Only whole images are served
 * (artifact-integrity.ts). I/O shell (node:http, fs).
 */
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import type { Counters } from '../metrics.js';
import type { ArtifactStore } from './artifact-store.js';
import type { ArtifactIntegrity } from './artifact-integrity.js';
import { DOWNLOAD_AUTH_CHALLENGE, type DownloadAuth } from './download-auth.js';
import { DownloadSlots, type Release } from './download-slots.js';
import { TransferWatch, type TransferLimits } from './transfer-watch.js';

export const ARTIFACT_PATH_PREFIX = '/artifacts/';

export interface ArtifactServerOptions extends TransferLimits {
  /** Downloads served at once; the rest wait in the queue, or get 503 + Retry-After when it is full. */
  maxConcurrent: number;
  /** Requests that may wait, first come first served, for a download slot. Default 0 (refuse at once). */
  maxQueued?: number;
  /**
   * Longest wait for a slot before a 503 + Retry-After (ms; real time). Keep it below the agents'
   * download idle timeout (no byte arrives while waiting). Default 20 s.
   */
  queueWaitMs?: number;
  /** Downloads one authenticated device may hold at once; the rest get 429 + Retry-After. */
  maxPerDevice: number;
  /** Seconds a refused client should wait. Default 5. */
  retryAfterS?: number;
}

export interface ArtifactServerDeps {
  store: ArtifactStore;
  integrity: ArtifactIntegrity;
  auth: DownloadAuth;
  /** The model a device is known by; a device is refused images built for other models. */
  hardwareModelOf: (deviceId: string) => string | undefined;
  counters: Counters;
  logger: Logger;
  /** Real-time timers for the transfer watch. */
  timers: Clock;
  options: ArtifactServerOptions;
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

/** The client has gone: its connection closed while we were busy. */
const gone = (res: ServerResponse): boolean => res.destroyed || !res.socket || res.socket.destroyed;

/** Logs the first refusals in full, then one in every 1,000, so a misbehaving fleet cannot flood logs. */
const LOG_FIRST = 100;

export class ArtifactServer {
  private readonly slots: DownloadSlots;
  private logged = 0;

  constructor(private readonly deps: ArtifactServerDeps) {
    this.slots = new DownloadSlots({ global: deps.options.maxConcurrent, perDevice: deps.options.maxPerDevice, queue: deps.options.maxQueued ?? 0 });
  }

  get activeDownloads(): number {
    return this.slots.activeCount;
  }

  /** Downloads waiting for a slot. */
  get queuedDownloads(): number {
    return this.slots.queuedCount;
  }

  /** Handles the request if it is for an artifact; returns false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0]!;
    if (!path.startsWith(ARTIFACT_PATH_PREFIX)) return false;
    this.serve(path.slice(ARTIFACT_PATH_PREFIX.length), req, res).catch((err: unknown) => {
      this.deps.counters.inc('artifacts.errors');
      this.deps.logger.error({ err }, 'artifact request failed');
      if (!res.headersSent && !gone(res)) text(res, 500, 'internal error');
      else res.destroy();
    });
    return true;
  }

  private async serve(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { counters, options } = this.deps;
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'only GET and HEAD', { allow: 'GET, HEAD' });
    if (!/^[0-9a-f]{64}$/.test(id)) return text(res, 404, 'no such artifact');

    const auth = await this.deps.auth.authenticate(req.headers.authorization, req.socket.remoteAddress ?? 'unknown');
    if (gone(res)) return;
    if (!auth.ok) {
      counters.inc(auth.why === 'busy' ? 'artifacts.auth.busy' : `artifacts.auth.${auth.why}`);
      // No credentials is the first step of HTTP Basic, not a refusal: an agent never sends its
      // secret unasked (agent/downloader.ts), so its first download from an origin gets the
      // challenge and comes back with them. Counted; logged only at debug.
      if (auth.why === 'missing') this.deps.logger.debug({ remote: req.socket.remoteAddress, sha256: id }, 'artifact download without credentials: answered with the Basic challenge');
      else this.refusal(req, auth.deviceId, id, `credentials ${auth.why}`);
      if (auth.status === 503) return text(res, 503, 'too many credential checks in progress; retry later', { 'retry-after': String(options.retryAfterS ?? 5) });
      return text(res, 401, "downloads need the device's credentials (HTTP Basic: device id and secret)", { 'www-authenticate': DOWNLOAD_AUTH_CHALLENGE });
    }
    const deviceId = auth.deviceId;
    const record = this.deps.store.bySha(id);
    if (!record) return text(res, 404, 'no such artifact');
    const model = deviceId !== undefined ? this.deps.hardwareModelOf(deviceId) : undefined;
    if (model !== undefined && !record.hardware.includes(model)) {
      counters.inc('artifacts.auth.forbidden');
      this.refusal(req, deviceId, id, `image is for ${record.hardware.join(', ')}, device is ${model}`);
      return text(res, 403, `this image is not built for ${model}`);
    }

    const integrity = await this.deps.integrity.check(id, record.size);
    if (gone(res)) return;
    if (integrity.status !== 'verified') {
      counters.inc('artifacts.refused-damaged');
      return text(res, 500, 'the stored image is damaged; the operator must upload it again');
    }
    const size = record.size;
    const etag = `"${id}"`;
    const common = {
      etag,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      // Content-addressed: the bytes behind a name never change. Private: each download is authenticated.
      'cache-control': 'private, max-age=31536000, immutable',
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

    const release = await this.slot(req, res, deviceId, id);
    if (release === undefined) return;
    // Attached before anything else can happen; a connection that closed already releases at once.
    res.once('close', release);
    if (gone(res)) return release();
    counters.inc('artifacts.downloads');
    await this.send(req, res, { id, deviceId, start: range?.start ?? 0, end: range?.end ?? size - 1, size, partial: range !== undefined, common });
  }

  /**
   * A download slot: at once, after a wait in the queue, or none (the refusal is answered here, and
   * undefined returned, as when the client leaves while waiting).
   */
  private slot(req: IncomingMessage, res: ServerResponse, deviceId: string | undefined, sha256: string): Promise<Release | undefined> {
    const { counters, options, timers } = this.deps;
    const retryAfter = { 'retry-after': String(options.retryAfterS ?? 5) };
    return new Promise((resolve) => {
      let leave = (): void => undefined;
      const r = this.slots.request(deviceId, (release) => {
        leave();
        resolve(release);
      });
      if (r.kind === 'granted') return resolve(r.release);
      if (r.kind === 'refused') {
        if (r.scope === 'device') {
          counters.inc('artifacts.refused-device-busy');
          this.refusal(req, deviceId, sha256, `already holds ${options.maxPerDevice} downloads`);
          text(res, 429, `this device already has ${options.maxPerDevice} downloads in progress; retry later`, retryAfter);
        } else {
          counters.inc('artifacts.refused-busy');
          text(res, 503, 'too many downloads in progress; retry later', retryAfter);
        }
        return resolve(undefined);
      }
      counters.inc('artifacts.queued');
      const waitMs = options.queueWaitMs ?? 20_000;
      const timer = timers.setTimeout(() => {
        res.off('close', onClose);
        r.cancel();
        counters.inc('artifacts.refused-busy');
        counters.inc('artifacts.queue-timeouts');
        text(res, 503, `no download slot free within ${waitMs} ms; retry later`, retryAfter);
        resolve(undefined);
      }, waitMs);
      // A client that leaves while waiting gives its place up at once.
      const onClose = (): void => {
        timers.clearTimeout(timer);
        r.cancel();
        resolve(undefined);
      };
      res.once('close', onClose);
      leave = () => {
        timers.clearTimeout(timer);
        res.off('close', onClose);
      };
    });
  }

  private async send(
    req: IncomingMessage,
    res: ServerResponse,
    t: { id: string; deviceId: string | undefined; start: number; end: number; size: number; partial: boolean; common: Record<string, string> },
  ): Promise<void> {
    const { counters, logger, timers, options } = this.deps;
    res.writeHead(t.partial ? 206 : 200, {
      ...t.common,
      'content-length': t.end - t.start + 1,
      ...(t.partial ? { 'content-range': `bytes ${t.start}-${t.end}/${t.size}` } : {}),
    });
    const pending = (): number => res.socket?.writableLength ?? 0;
    const watch = new TransferWatch(timers, options, pending, (why) => {
      counters.inc(`artifacts.dropped.${why}`);
      this.refusal(req, t.deviceId, t.id, why === 'idle' ? `read nothing for ${options.idleTimeoutMs} ms` : `read slower than ${options.minBytesPerSecond} bytes/s`);
      // Also when the file is read to its end and only the response's tail waits for the client.
      res.destroy();
    });
    try {
      await pipeline(createReadStream(this.deps.store.pathOf(t.id), { start: t.start, end: t.end }), watch, res);
      counters.inc('artifacts.completed');
    } catch (err) {
      // The client went away, was dropped by the watch, or the file failed: the connection is closed
      // either way (pipeline destroys the response), which releases the slot.
      if (!watch.dropped) counters.inc(gone(res) ? 'artifacts.aborted' : 'artifacts.errors');
      logger.debug({ err, deviceId: t.deviceId, sha256: t.id, bytes: watch.bytes }, 'download ended early');
    } finally {
      watch.stop();
      counters.inc('artifacts.bytes', watch.bytes);
    }
  }

  private refusal(req: IncomingMessage, deviceId: string | undefined, sha256: string, reason: string): void {
    const n = this.logged++;
    if (n < LOG_FIRST || n % 1000 === 0) {
      this.deps.logger.warn({ deviceId, remote: req.socket.remoteAddress, sha256, reason, refusals: n + 1 }, 'artifact download refused or dropped');
    }
  }
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers }).end(body + '\n');
}
