import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { DownloadFaultProxy } from '../../simulator/download-faults.js';
import { PacedClock } from '../../simulator/paced-clock.js';

const image = randomBytes(256 * 1024);
let origin: http.Server;
let originUrl = '';
const clock = new PacedClock({ scale: 1000 });
const proxy = new DownloadFaultProxy(clock);

beforeAll(async () => {
  origin = http.createServer((req, res) => {
    const m = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, { 'content-length': String(image.length - from) });
    res.end(image.subarray(from));
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/artifacts/x.img`;
  clock.start();
  await proxy.start();
});
afterAll(async () => {
  await proxy.stop();
  await proxy.stop();
  clock.stop();
  await new Promise<void>((r) => origin.close(() => r()));
});

function fetchAll(url: string, range?: string): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const req = http.get(url, range ? { headers: { range } } : {}, (res) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete: true }));
      res.on('error', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete: false }));
      res.on('aborted', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.concat(chunks), complete: false }));
  });
}

describe('download fault proxy', () => {
  it('passes a clean download through untouched (no proxy at all)', () => {
    expect(proxy.urlFor(originUrl, { kind: 'pass' })).toBe(originUrl);
  });

  it('cuts a transfer part-way, and the rest resumes with a Range request', async () => {
    const first = await fetchAll(proxy.urlFor(originUrl, { kind: 'cut', afterBytes: 100_000 }));
    expect(first.complete).toBe(false);
    expect(first.body.length).toBeLessThanOrEqual(100_000);
    const rest = await fetchAll(proxy.urlFor(originUrl, { kind: 'pass' }), `bytes=${first.body.length}-`);
    expect(rest.status).toBe(206);
    expect(Buffer.concat([first.body, rest.body]).equals(image)).toBe(true);
    expect(proxy.counts.cut).toBeGreaterThanOrEqual(1);
  });

  it('corrupts one byte and keeps the length, so only the hash tells', async () => {
    const got = await fetchAll(proxy.urlFor(originUrl, { kind: 'corrupt' }));
    expect(got.body.length).toBe(image.length);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(got.body)).not.toBe(sha(image));
  });

  it('throttles in simulated time', async () => {
    // 256 KiB at 128 KiB/s is 2 simulated seconds: 2 ms of real time at ×1000.
    const got = await fetchAll(proxy.urlFor(originUrl, { kind: 'throttle', kibps: 128 }));
    expect(got.body.equals(image)).toBe(true);
    expect(proxy.counts.throttled).toBe(1);
  });
});
