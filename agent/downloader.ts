/**
 * Resumable image download over HTTP/HTTPS with streaming sha256. I/O adapter.
 *
 * - Resumes a partial file with `Range: bytes=N-` (a 200 reply means the server ignored the range:
 *   start over); a 416 means the partial file is unusable: it is deleted and the attempt counts.
 * - Never accepts more bytes than the manifest's size; the hash of what was received is checked
 *   before the file is handed on, so a mismatching image never reaches a slot. A resumed download
 *   that fails the hash is started again from zero, once: the bytes kept from an earlier attempt (a
 *   write torn by a power loss, a file that changed on the server in between) may be what is wrong.
 * - Every failure comes back as an outcome (never a throw) saying whether a retry can help; the update
 *   machine bounds the retries and backs off, so a 404 or 416 never turns into a loop.
 * - A server that asks for credentials (401 with a Basic challenge, as the coordinator's artifact
 *   server does) gets the device's own, and that origin gets them with every later request.
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import type { UpdateReason } from '@fleet/protocol/reasons';
import { definedProps } from '@fleet/firmware/defined-props';
import { FILE_PASS_CHUNK, readChunks, sha256OfFile } from './file-passes.js';

export interface DownloadRequest {
  url: string;
  size: number;
  sha256: string;
  /** Where the (partial) file lives; kept across restarts for resumption. */
  dest: string;
}

export type DownloadOutcome =
  | { ok: true; size: number; sha256: string; resumedFrom: number }
  | {
      ok: false;
      reason: Extract<UpdateReason, 'download-failed' | 'size-mismatch' | 'hash-mismatch'>;
      detail: string;
      retryable: boolean;
      /**
       * The server refused for load (503, 429): flow control, not a failed attempt. `retryAfterMs`
       * from its Retry-After header (seconds; capped at 10 minutes), when given.
       */
      busy?: boolean;
      retryAfterMs?: number;
    };

export interface DownloadOptions {
  signal: AbortSignal;
  /** Called as bytes arrive (total bytes on disk so far). */
  onProgress?: (bytes: number) => void;
}

/** The download seam: the simulator injects one that fakes the transfer. */
export interface Downloader {
  download(req: DownloadRequest, options: DownloadOptions): Promise<DownloadOutcome>;
  /** Size and sha256 of a file on disk (the verifying stage). */
  digest(path: string): Promise<{ size: number; sha256: string }>;
  /** Deletes a download (done, failed or superseded). */
  discard(path: string): Promise<void>;
}

export interface HttpDownloaderOptions {
  /** Drop a connection that sends nothing for this long (ms, default 60 s). */
  idleTimeoutMs?: number;
  /** Largest image accepted whatever the manifest says (default 4 GiB). */
  maxBytes?: number;
  /** Extra CA certificates (PEM) for https. */
  ca?: string | Buffer;
  /** Local address to bind the client sockets to (default: the system's choice). */
  localAddress?: string;
  /**
   * The device's credentials (its broker user name and secret), sent over HTTP Basic to an artifact
   * server that asks for them with a 401 Basic challenge, then to that origin without asking. Never
   * sent unasked, so a third-party server named in an offline-signed manifest sees them only if it
   * asks; over plain http only with `plainHttpCredentials`.
   */
  credentials?: { username: string; password: string };
  /**
   * Allow credentials over plain http. Set when the broker link is not encrypted either (mqtt://,
   * ws://), so the secret is exposed no more than it already is. Default false.
   */
  plainHttpCredentials?: boolean;
}

function hashPrefix(path: string, hash: Hash): Promise<number> {
  return readChunks(path, (chunk) => hash.update(chunk));
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const fail = (reason: 'download-failed' | 'size-mismatch' | 'hash-mismatch', detail: string, retryable: boolean): DownloadOutcome => ({
  ok: false,
  reason,
  detail: detail.slice(0, 500),
  retryable,
});

/** Longest Retry-After honoured: a server asking for more is asked again after this. */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

/** Retry-After in delta-seconds (the form servers use for load shedding); an HTTP date is ignored. */
function retryAfterOf(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d+$/.test(header.trim())) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Number(header.trim()) * 1000);
}

export class HttpDownloader implements Downloader {
  private readonly idleTimeoutMs: number;
  private readonly maxBytes: number;
  /** Origins that asked for credentials: they get them up front from then on. */
  private readonly authOrigins = new Set<string>();

  constructor(private readonly options: HttpDownloaderOptions = {}) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.maxBytes = options.maxBytes ?? 4 * 1024 ** 3;
  }

  digest(path: string): Promise<{ size: number; sha256: string }> {
    return sha256OfFile(path);
  }

  async discard(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  async download(req: DownloadRequest, options: DownloadOptions): Promise<DownloadOutcome> {
    if (req.size > this.maxBytes) return fail('size-mismatch', `image of ${req.size} bytes exceeds the device limit of ${this.maxBytes}`, false);
    await mkdir(dirname(req.dest), { recursive: true });
    let have = await fileSize(req.dest);
    if (have > req.size) {
      await rm(req.dest, { force: true });
      have = 0;
    }
    const hash = createHash('sha256');
    if (have > 0) have = await hashPrefix(req.dest, hash);
    if (have === req.size) return this.finish(req, options, hash, have, have);
    if (options.signal.aborted) return fail('download-failed', 'aborted', false);
    return this.fetch(req, options, hash, have);
  }

  private async finish(req: DownloadRequest, options: DownloadOptions, hash: Hash, size: number, resumedFrom: number): Promise<DownloadOutcome> {
    const sha256 = hash.digest('hex');
    if (sha256 !== req.sha256) {
      await rm(req.dest, { force: true });
      if (resumedFrom > 0 && !options.signal.aborted) {
        // Only the fresh download's own verdict counts: from zero, it cannot resume again here.
        const again = await this.fetch(req, options, createHash('sha256'), 0);
        if (again.ok || again.reason !== 'hash-mismatch') return again;
        return fail('hash-mismatch', `${again.detail} (also after discarding the ${resumedFrom} bytes resumed from an earlier attempt and downloading it again from zero)`, false);
      }
      return fail('hash-mismatch', `sha256 of the download is ${sha256}, the signed manifest says ${req.sha256}`, false);
    }
    await syncFile(req.dest);
    return { ok: true, size, sha256, resumedFrom };
  }

  /** The Authorization header for `url`, when credentials may go there. */
  private authorization(url: URL): string | undefined {
    const c = this.options.credentials;
    if (!c) return undefined;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.options.plainHttpCredentials)) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  private fetch(req: DownloadRequest, options: DownloadOptions, hash: Hash, from: number): Promise<DownloadOutcome> {
    return new Promise<DownloadOutcome>((resolve) => {
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        resolve(fail('download-failed', `bad artifact URL ${req.url}`, false));
        return;
      }
      const lib = url.protocol === 'https:' ? https : http;
      let settled = false;
      const settle = (outcome: DownloadOutcome | Promise<DownloadOutcome>) => {
        if (settled) return;
        settled = true;
        options.signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const headers: Record<string, string> = { 'user-agent': 'fleet-agent' };
      if (from > 0) headers['range'] = `bytes=${from}-`;
      const authorization = this.authOrigins.has(url.origin) ? this.authorization(url) : undefined;
      if (authorization !== undefined) headers['authorization'] = authorization;
      const request = lib.get(url, { headers, ...definedProps({ ca: this.options.ca, localAddress: this.options.localAddress }) }, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 401) {
          res.resume();
          const challenged = /^\s*basic\b/i.test(res.headers['www-authenticate'] ?? '');
          if (challenged && authorization === undefined && this.authorization(url) !== undefined) {
            // Asked for credentials we may send: ask again with them (once; a second 401 is final).
            this.authOrigins.add(url.origin);
            settle(this.fetch(req, options, hash, from));
            return;
          }
          const why = authorization !== undefined
            ? "it refused this device's credentials"
            : this.options.credentials
              ? 'it needs credentials, which this device sends only over https (or over http when its broker link is plain too)'
              : 'it needs credentials and this device has none (broker username and password)';
          settle(fail('download-failed', `server answered HTTP 401 for ${url.pathname}: ${why}`, false));
          return;
        }
        if (status === 416) {
          res.resume();
          // The partial file does not fit what the server has: start over next attempt.
          settle(rm(req.dest, { force: true }).then(() => fail('download-failed', 'server answered 416 to a resume; the partial download was discarded', true)));
          return;
        }
        if (status === 503 || status === 429) {
          res.resume();
          const retryAfterMs = retryAfterOf(res.headers['retry-after']);
          settle({
            ok: false,
            reason: 'download-failed',
            detail: `server busy: HTTP ${status} for ${url.pathname}`,
            retryable: true,
            busy: true,
            ...definedProps({ retryAfterMs }),
          });
          return;
        }
        if (status !== 200 && status !== 206) {
          res.resume();
          settle(fail('download-failed', `server answered HTTP ${status} for ${url.pathname}`, status >= 500 || status === 404 || status === 408 || status === 429));
          return;
        }
        let offset = from;
        let digest = hash;
        let flags = 'a';
        if (status === 200 && from > 0) {
          // The server ignored the range: the body is the whole image again.
          offset = 0;
          digest = createHash('sha256');
          flags = 'w';
        } else if (status === 206) {
          const m = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
          if (!m || Number(m[1]) !== from) {
            res.resume();
            settle(rm(req.dest, { force: true }).then(() => fail('download-failed', `server resumed at the wrong offset (${res.headers['content-range'] ?? 'no Content-Range'})`, true)));
            return;
          }
        }
        // Buffered up to a chunk before asking the socket to pause (the default 16 KiB paused it at
        // every socket read).
        const out = createWriteStream(req.dest, { flags, highWaterMark: FILE_PASS_CHUNK });
        let bytes = offset;
        let overflow = false;
        res.on('data', (chunk: Buffer) => {
          if (overflow) return;
          if (bytes + chunk.length > req.size) {
            overflow = true;
            res.destroy();
            out.destroy();
            settle(rm(req.dest, { force: true }).then(() => fail('size-mismatch', `server sent more than the manifest's ${req.size} bytes`, false)));
            return;
          }
          bytes += chunk.length;
          digest.update(chunk);
          if (!out.write(chunk)) res.pause();
          options.onProgress?.(bytes);
        });
        out.on('drain', () => res.resume());
        out.on('error', (err) => {
          res.destroy();
          settle(fail('download-failed', `cannot write ${req.dest}: ${err.message}`, false));
        });
        res.on('error', () => {
          /* reported through 'close' below */
        });
        res.on('close', () => {
          if (overflow || settled) return;
          out.end(() => {
            if (options.signal.aborted) return settle(fail('download-failed', 'aborted', false));
            if (bytes < req.size) return settle(fail('download-failed', `connection ended after ${bytes} of ${req.size} bytes`, true));
            // `offset`: where this response's bytes began (0 when the server ignored the range).
            settle(this.finish(req, options, digest, bytes, offset));
          });
        });
      });
      request.setTimeout(this.idleTimeoutMs, () => request.destroy(new Error(`no data for ${this.idleTimeoutMs} ms`)));
      request.on('error', (err) => settle(fail('download-failed', options.signal.aborted ? 'aborted' : `request failed: ${err.message}`, !options.signal.aborted)));
      const onAbort = () => request.destroy(new Error('aborted'));
      options.signal.addEventListener('abort', onAbort);
    });
  }
}
