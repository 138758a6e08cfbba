/** Artifact downloads: Range (206, 416), strong ETag, If-None-Match, If-Range, HEAD, bounded concurrency. */
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { parseRange } from '../../coordinator/artifacts/artifact-server.js';
import { verifyManifest } from '../../firmware/manifest.js';
import { loadTrustStore } from '../../firmware/trust-store.js';
import { startCoordinator, tempDir } from './helpers.js';

let c: Coordinator;
let cleanup: () => void;
let url: string;
let sha: string;
const image = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));

beforeEach(async () => {
  let dir: string;
  ({ dir, cleanup } = tempDir());
  c = await startCoordinator(dir, { config: { http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 1 } } });
  const a = await c.uploadFirmware({ image: Readable.from([image]), version: '3.0.0', hardware: ['rpi4'] });
  sha = a.sha256;
  url = `${c.httpUrl}/artifacts/${sha}`;
});

afterEach(async () => {
  await c.stop();
  cleanup();
});

describe('artifact server', () => {
  it('stores the image content-addressed with a manifest a device accepts', async () => {
    expect(sha).toBe(createHash('sha256').update(image).digest('hex'));
    const a = c.artifacts.get('3.0.0')!;
    const trust = await loadTrustStore(c.trustDir);
    const v = verifyManifest(a.manifest, trust, { now: Date.now(), hardwareModel: 'rpi4', currentVersion: '1.0.0', securityFloor: 0 });
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.value.artifact).toEqual({ url, size: image.length, sha256: sha });
  });

  it('serves the whole image with a strong ETag and answers If-None-Match with 304', async () => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${sha}"`);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await res.arrayBuffer()).equals(image)).toBe(true);
    const again = await fetch(url, { headers: { 'if-none-match': `"${sha}"` } });
    expect(again.status).toBe(304);
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(image.length));
  });

  it('resumes with Range, and restarts from zero when If-Range names another version', async () => {
    const part = await fetch(url, { headers: { range: 'bytes=1000-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-${image.length - 1}/${image.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(image.subarray(1000))).toBe(true);
    const middle = await fetch(url, { headers: { range: 'bytes=10-19', 'if-range': `"${sha}"` } });
    expect(middle.status).toBe(206);
    expect(Buffer.from(await middle.arrayBuffer()).equals(image.subarray(10, 20))).toBe(true);
    const stale = await fetch(url, { headers: { range: 'bytes=10-19', 'if-range': '"something-else"' } });
    expect(stale.status).toBe(200);
    expect((await stale.arrayBuffer()).byteLength).toBe(image.length);
    const beyond = await fetch(url, { headers: { range: `bytes=${image.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${image.length}`);
  });

  it('refuses downloads beyond the concurrency bound with 503 and Retry-After', async () => {
    // Large enough that the first body cannot fit in socket buffers while nobody reads it.
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    const a = await c.uploadFirmware({ image: Readable.from([big]), version: '3.1.0', hardware: ['rpi4'] });
    const bigUrl = `${c.httpUrl}/artifacts/${a.sha256}`;
    const first = await fetch(bigUrl); // headers received: the body is still being streamed
    const second = await fetch(bigUrl);
    expect(second.status).toBe(503);
    expect(second.headers.get('retry-after')).toBe('5');
    expect((await first.arrayBuffer()).byteLength).toBe(big.length);
    await second.text();
    expect(c.counters.get('artifacts.refused-busy')).toBe(1);
  });

  it('answers 404 for unknown and malformed ids', async () => {
    expect((await fetch(`${c.httpUrl}/artifacts/${'0'.repeat(64)}`)).status).toBe(404);
    expect((await fetch(`${c.httpUrl}/artifacts/../fleet.db`)).status).toBe(404);
  });

  it.each([
    ['bytes=0-0', { start: 0, end: 0 }],
    ['bytes=-10', { start: 90, end: 99 }],
    ['bytes=95-200', { start: 95, end: 99 }],
    ['bytes=100-', null],
    ['bytes=5-3', null],
    ['bytes=0-1,5-6', undefined],
    ['items=0-1', undefined],
  ])('parses %s', (header, want) => {
    expect(parseRange(header, 100)).toEqual(want);
  });
});
