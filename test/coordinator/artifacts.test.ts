/**
 * Artifact downloads: Range (206, 416), strong ETag, If-None-Match, If-Range, HEAD, bounded
 * concurrency, per-device credentials, and stored images checked before they are served or deployed.
 */
import { Readable } from 'node:stream';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { parseRange } from '../../coordinator/artifacts/artifact-server.js';
import { verifyManifest } from '../../firmware/manifest.js';
import { loadTrustStore } from '../../firmware/trust-store.js';
import { api, startCoordinator, tempDir, waitFor } from './helpers.js';

let c: Coordinator;
let dir: string;
let cleanup: () => void;
let url: string;
let sha: string;
/** The manifest the upload signed. */
let manifest: unknown;
/** A provisioned rpi4 device's HTTP Basic credentials. */
let auth: Record<string, string>;
const image = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));

const basic = (user: string, secret: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}` });
/** fetch with the device's credentials. */
const get = (u: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> =>
  fetch(u, { ...init, headers: { ...auth, ...(init.headers ?? {}) } });

beforeEach(async () => {
  ({ dir, cleanup } = tempDir());
  c = await startCoordinator(dir, { config: { http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 1, maxQueuedDownloads: 1, downloadQueueWaitMs: 2000 } } });
  const a = await c.uploadFirmware({ image: Readable.from([image]), version: '3.0.0', hardware: ['rpi4'] });
  sha = a.sha256;
  manifest = a.manifest;
  url = `${c.httpUrl}/artifacts/${sha}`;
  const [dev] = await c.provisionDevices(['dl-dev-1'], { hardwareModel: 'rpi4' });
  auth = basic(dev!.deviceId, dev!.secret);
});

/** What the admin API says about the image's integrity on disk. */
const integrity = async (): Promise<{ status: string; reason?: string }> =>
  (await api<{ firmware: { sha256: string; integrity: { status: string; reason?: string } }[] }>(c, 'GET', '/v1/firmware')).body.firmware.find((f) => f.sha256 === sha)!.integrity;

afterEach(async () => {
  await c.stop();
  cleanup();
});

describe('artifact server', () => {
  it('stores the image content-addressed with a manifest a device accepts', async () => {
    expect(sha).toBe(createHash('sha256').update(image).digest('hex'));
    const trust = await loadTrustStore(c.trustDir);
    const v = verifyManifest(manifest, trust, { now: Date.now(), hardwareModel: 'rpi4', currentVersion: '1.0.0', securityFloor: 0 });
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.value.artifact).toEqual({ url, size: image.length, sha256: sha });
  });

  it('serves the whole image with a strong ETag and answers If-None-Match with 304', async () => {
    const res = await get(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${sha}"`);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await res.arrayBuffer()).equals(image)).toBe(true);
    const again = await get(url, { headers: { 'if-none-match': `"${sha}"` } });
    expect(again.status).toBe(304);
    const head = await get(url, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(image.length));
  });

  it('resumes with Range, and restarts from zero when If-Range names another version', async () => {
    const part = await get(url, { headers: { range: 'bytes=1000-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-${image.length - 1}/${image.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(image.subarray(1000))).toBe(true);
    const middle = await get(url, { headers: { range: 'bytes=10-19', 'if-range': `"${sha}"` } });
    expect(middle.status).toBe(206);
    expect(Buffer.from(await middle.arrayBuffer()).equals(image.subarray(10, 20))).toBe(true);
    const stale = await get(url, { headers: { range: 'bytes=10-19', 'if-range': '"something-else"' } });
    expect(stale.status).toBe(200);
    expect((await stale.arrayBuffer()).byteLength).toBe(image.length);
    const beyond = await get(url, { headers: { range: `bytes=${image.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${image.length}`);
  });

  it('queues a download beyond the concurrency bound and refuses one past the queue with 503 and Retry-After', async () => {
    // Large enough that the first body cannot fit in socket buffers while nobody reads it.
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    const a = await c.uploadFirmware({ image: Readable.from([big]), version: '3.1.0', hardware: ['rpi4'] });
    const bigUrl = `${c.httpUrl}/artifacts/${a.sha256}`;
    const first = await get(bigUrl); // headers received: the body is still being streamed
    const second = get(bigUrl);
    await waitFor(() => c.counter('artifacts.queued') === 1, 'the second download waiting for the slot');
    // Another device: this one already holds its cap of two (one download, one place in the queue).
    expect((await get(bigUrl)).status).toBe(429);
    const [other] = await c.provisionDevices(['dl-dev-2'], { hardwareModel: 'rpi4' });
    const third = await fetch(bigUrl, { headers: basic(other!.deviceId, other!.secret) });
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('5');
    await third.text();
    expect(c.counter('artifacts.refused-busy')).toBe(1);
    // The slot passes to the waiting download as soon as the first one ends.
    expect((await first.arrayBuffer()).byteLength).toBe(big.length);
    const served = await second;
    expect(served.status).toBe(200);
    expect((await served.arrayBuffer()).byteLength).toBe(big.length);
    expect(c.counter('artifacts.downloads')).toBe(2);
  });

  it('answers 503 with Retry-After to a download that waited its longest for a slot', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    const a = await c.uploadFirmware({ image: Readable.from([big]), version: '3.1.0', hardware: ['rpi4'] });
    const bigUrl = `${c.httpUrl}/artifacts/${a.sha256}`;
    const first = await get(bigUrl);
    const waited = await get(bigUrl); // nobody reads the first: the slot stays taken past the wait
    expect(waited.status).toBe(503);
    expect(waited.headers.get('retry-after')).toBe('5');
    expect(await waited.text()).toMatch(/no download slot free within 2000 ms/);
    expect([c.counter('artifacts.queued'), c.counter('artifacts.queue-timeouts')]).toEqual([1, 1]);
    await first.body?.cancel();
    await waitFor(async () => (await get(url)).status === 200, 'the slot free again once the first client left');
  });

  it('gives up the place of a client that leaves while waiting', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    const a = await c.uploadFirmware({ image: Readable.from([big]), version: '3.1.0', hardware: ['rpi4'] });
    const bigUrl = `${c.httpUrl}/artifacts/${a.sha256}`;
    const first = await get(bigUrl);
    const leaving = new AbortController();
    const left = get(bigUrl, { signal: leaving.signal }).catch((err: unknown) => err);
    await waitFor(() => c.counter('artifacts.queued') === 1, 'the second download waiting');
    leaving.abort();
    await left;
    const queued = async (): Promise<number> => (await api<{ downloads: { queued: number } }>(c, 'GET', '/v1/metrics')).body.downloads.queued;
    await waitFor(async () => (await queued()) === 0, 'the place given up');
    // The queue's one place is free again: another device waits in it instead of being refused.
    const [other] = await c.provisionDevices(['dl-dev-3'], { hardwareModel: 'rpi4' });
    const next = fetch(bigUrl, { headers: basic(other!.deviceId, other!.secret) });
    await waitFor(async () => (await queued()) === 1, 'the next device waiting in the freed place');
    await first.arrayBuffer();
    expect((await next).status).toBe(200);
    expect(c.counter('artifacts.refused-busy')).toBe(0);
  });

  it('asks for credentials, refuses bad ones and images built for another model, counting each', async () => {
    const none = await fetch(url);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="fleet-artifacts"/);
    const wrong = await fetch(url, { headers: basic('dl-dev-1', 'not-the-secret') });
    expect(wrong.status).toBe(401);
    const unknown = await fetch(url, { headers: basic('nobody', 'whatever') });
    expect(unknown.status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer x' } })).status).toBe(401);
    const [cm4] = await c.provisionDevices(['dl-cm4-1'], { hardwareModel: 'cm4' });
    const other = await fetch(url, { headers: basic(cm4!.deviceId, cm4!.secret) });
    expect(other.status).toBe(403);
    expect(c.metrics().counters).toMatchObject({
      'artifacts.auth.missing': 1,
      'artifacts.auth.refused': 2,
      'artifacts.auth.malformed': 1,
      'artifacts.auth.forbidden': 1,
    });
    expect(c.counter('artifacts.downloads')).toBe(0);
  });

  it('never serves or deploys a truncated or altered image, reports it, and takes it back when uploaded again', async () => {
    const path = join(dir, 'artifacts', sha);
    expect((await get(url)).status).toBe(200);
    truncateSync(path, 50_000);
    const truncated = await get(url);
    expect(truncated.status).toBe(500);
    expect(await integrity()).toMatchObject({ status: 'damaged', reason: 'the image file has 50000 bytes, not 100000' });
    await expect(c.createDeployment({ firmwareVersion: '3.0.0', target: { hardwareModels: ['rpi4'] } })).rejects.toMatchObject({ code: 'artifact-damaged' });
    const listed = await api<{ firmware: { integrity: { status: string } }[] }>(c, 'GET', '/v1/firmware');
    expect(listed.body.firmware[0]!.integrity.status).toBe('damaged');
    expect((await c.auditEntries({ subject: sha })).map((e) => e.action)).toContain('artifact.damaged');

    // The same bytes again make it whole; then one byte flipped in place (same size) is caught too.
    await c.uploadFirmware({ image: Readable.from([image]), version: '3.0.0', hardware: ['rpi4'] });
    expect((await integrity()).status).toBe('verified');
    expect(Buffer.from(await (await get(url)).arrayBuffer()).equals(image)).toBe(true);
    const altered = Buffer.from(image);
    altered[70_000] = altered[70_000]! ^ 0xff;
    writeFileSync(path, altered);
    expect((await get(url)).status).toBe(500);
    expect((await integrity()).reason).toMatch(/sha256 is/);
    expect((await api(c, 'POST', '/v1/deployments', { firmwareVersion: '3.0.0', target: { hardwareModels: ['rpi4'] } })).status).toBe(409);
    expect(c.counter('artifacts.damaged')).toBe(2);
    expect(c.counter('artifacts.refused-damaged')).toBe(2);
  });

  it('checks every stored image in the background at start-up', async () => {
    await c.stop();
    truncateSync(join(dir, 'artifacts', sha), 10);
    c = await startCoordinator(dir, { config: { http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 1 } } });
    await waitFor(async () => (await integrity()).status === 'damaged', 'the start-up check to find the damaged image');
    expect((await c.auditEntries({ subject: sha })).map((e) => e.action)).toContain('artifact.damaged');
  });

  it('answers 404 for unknown and malformed ids', async () => {
    expect((await get(`${c.httpUrl}/artifacts/${'0'.repeat(64)}`)).status).toBe(404);
    expect((await get(`${c.httpUrl}/artifacts/../fleet.db`)).status).toBe(404);
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
