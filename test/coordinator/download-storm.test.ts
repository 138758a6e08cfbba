/**
 * The artifact server never wedges: a coordinator in its own process, and raw sockets (node:net) that
 * disconnect at every point of a download (before their headers are complete, while the server is
 * still checking credentials and looking the image up, in the middle of the body), that never read,
 * or that read too slowly. After each storm every slot is free again and a normal download succeeds.
 * Small limits so the storms are quick: 8 downloads at once, 2 per device, 512 KiB/s over 1 s
 * windows (5 s idle). The server sees progress only as the kernel takes bytes, in steps of up to a
 * third of the socket's send buffer (MBs on loopback), so a stalled or slow reader is caught by the
 * rate window here, and the client's kernel buffers take the first MBs of every download.
 */
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawnProcess, tsLoader, repoRoot, type RunningProcess } from '../support/processes.js';
import { tempDir, waitFor } from './helpers.js';

interface ChildInfo {
  httpUrl: string;
  token: string;
}

const LIMITS = { maxConcurrentDownloads: 8, maxDownloadsPerDevice: 2, downloadIdleTimeoutMs: 5000, downloadMinBytesPerSecond: 512 * 1024, downloadRateWindowMs: 1000 };
// Far more than the socket buffers of a client that does not read can take.
const image = Buffer.alloc(24 * 1024 * 1024);
for (let i = 0; i < image.length; i += 4096) image.writeUInt32BE(i, i);
const sha = createHash('sha256').update(image).digest('hex');

let child: RunningProcess;
let info: ChildInfo;
let cleanup: () => void;
let port: number;
const sockets = new Set<Socket>();
let secrets: Map<string, string>;

async function call<T>(method: string, path: string, body?: unknown, raw?: Buffer): Promise<T> {
  const res = await fetch(`${info.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${info.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : raw ? { body: raw } : {}),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

interface Metrics {
  counters: Record<string, number>;
  downloads: { active: number };
}
const metrics = (): Promise<Metrics> => call<Metrics>('GET', '/v1/metrics');
const counter = async (name: string): Promise<number> => (await metrics()).counters[name] ?? 0;

const basic = (deviceId: string): string => `Basic ${Buffer.from(`${deviceId}:${secrets.get(deviceId)!}`).toString('base64')}`;

function request(deviceId: string | undefined): string {
  return [`GET /artifacts/${sha} HTTP/1.1`, 'host: 127.0.0.1', ...(deviceId ? [`authorization: ${basic(deviceId)}`] : []), '', ''].join('\r\n');
}

/** A raw connection to the artifact server; closed by the test's cleanup if still open. */
function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', reject);
  });
}

/** A whole download with a device's credentials, checked byte for byte. */
async function download(deviceId: string): Promise<number> {
  const res = await fetch(`${info.httpUrl}/artifacts/${sha}`, { headers: { authorization: basic(deviceId) } });
  if (res.status !== 200) {
    await res.arrayBuffer();
    return res.status;
  }
  const got = Buffer.from(await res.arrayBuffer());
  expect(createHash('sha256').update(got).digest('hex')).toBe(sha);
  return 200;
}

const allFree = (): Promise<boolean> => metrics().then((m) => m.downloads.active === 0);

beforeEach(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  child = spawnProcess(process.execPath, ['--import', tsLoader, join(repoRoot, 'test/coordinator/coordinator-child.ts'), join(t.dir, 'coordinator')], {
    env: { CHILD_HTTP_CONFIG: JSON.stringify(LIMITS) },
  });
  info = JSON.parse(await child.waitForLine(/^\{"mqttUrl"/)) as ChildInfo;
  port = Number(new URL(info.httpUrl).port);
  const ids = Array.from({ length: 12 }, (_, i) => `storm-${i}`);
  const provisioned = await call<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: 'rpi4' });
  secrets = new Map(provisioned.devices.map((d) => [d.deviceId, d.secret]));
  await call('POST', '/v1/firmware?version=2.0.0&hardware=rpi4', undefined, image);
});

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await child.stop();
  cleanup();
});

describe('download storms', () => {
  it('clients that disconnect before their headers, during the lookup or mid-body leave no slot behind', async () => {
    // Before the headers are complete: the server has not even seen a request.
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        const s = await open();
        s.write(`GET /artifacts/${sha} HTTP/1.1\r\nhost: 127.0.0.1\r\n`);
        s.destroy();
      }),
    );
    // During the lookup: the whole request, then gone at once, so the close arrives while the server
    // checks the credentials and the image; some a moment later, at the other awaits.
    await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const s = await open();
        s.write(request(`storm-${i % 12}`));
        if (i % 3 === 0) s.destroy();
        else if (i % 3 === 1) setImmediate(() => s.destroy());
        else setTimeout(() => s.destroy(), 2);
      }),
    );
    // Mid-body: read a first MiB, then hang up (those refused for load hang up at once).
    await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const s = await open();
        s.write(request(`storm-${i % 8}`));
        let got = 0;
        await new Promise<void>((resolve) => {
          s.on('data', (chunk: Buffer) => {
            if (got === 0 && !chunk.toString('latin1', 0, 12).startsWith('HTTP/1.1 200')) s.destroy();
            got += chunk.length;
            if (got >= 1024 * 1024) s.destroy();
          });
          s.on('close', () => resolve());
        });
      }),
    );
    await waitFor(allFree, 'every download slot free after the storm', 20_000);
    expect(await download('storm-11')).toBe(200);
    const m = await metrics();
    expect(m.downloads.active).toBe(0);
    expect(m.counters['artifacts.aborted'] ?? 0).toBeGreaterThan(0);
  });

  it('connections that never read cannot take the slots from real downloads', async () => {
    const neverRead = async (deviceId: string | undefined): Promise<Socket> => {
      const s = await open();
      s.pause();
      s.write(request(deviceId));
      return s;
    };
    // Without credentials: refused before any slot is taken.
    await Promise.all(Array.from({ length: 64 }, () => neverRead(undefined)));
    await waitFor(async () => (await counter('artifacts.auth.missing')) === 64, '64 requests without credentials refused');
    expect((await metrics()).downloads.active).toBe(0);

    // One device's credentials: at most its two downloads; the other eight are told to come back.
    await Promise.all(Array.from({ length: 10 }, () => neverRead('storm-0')));
    await waitFor(async () => (await counter('artifacts.refused-device-busy')) === 8, 'the per-device cap refusing 8');
    expect(await download('storm-1')).toBe(200);

    // Six more devices fill the global bound: a real download then waits in the queue (or, past
    // its bounded wait, is refused busy: 503, flow control) until the stalled ones are dropped.
    await Promise.all(Array.from({ length: 6 }, (_, i) => neverRead(`storm-${i + 2}`)));
    await waitFor(async () => (await metrics()).downloads.active === 8, 'every slot held');
    expect([200, 503]).toContain(await download('storm-9'));
    await waitFor(allFree, 'stalled downloads dropped', 20_000);
    const dropped = async (): Promise<number> => (await counter('artifacts.dropped.idle')) + (await counter('artifacts.dropped.slow'));
    expect(await dropped()).toBeGreaterThanOrEqual(8);
    expect(await download('storm-9')).toBe(200);
  });

  it('drops a client that reads more slowly than the minimum rate', async () => {
    const s = await open();
    s.write(request('storm-3'));
    let got = 0;
    // About 160 KiB/s: pause after each chunk for as long as the chunk takes at that rate.
    s.on('data', (chunk: Buffer) => {
      got += chunk.length;
      s.pause();
      setTimeout(() => s.resume(), (chunk.length / (160 * 1024)) * 1000);
    });
    // The server closes its end; what its kernel already took still trickles in here, so we do not
    // wait for the close.
    await waitFor(async () => (await counter('artifacts.dropped.slow')) === 1, 'the slow download dropped', 20_000);
    await waitFor(allFree, 'its slot free');
    expect(got).toBeLessThan(image.length);
    s.destroy();
    expect(await download('storm-3')).toBe(200);
  });
});
