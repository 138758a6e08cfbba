/**
 * Downloads that survive interruptions: resumption with an HTTP Range request (started again from zero,
 * once, when the resumed bytes fail the hash), bounded retries on a
 * server that answers 404, a busy server (503) that does not spend those attempts, and an abort (the coordinator clears the wave) that stops the download and
 * never reboots into the update. Real Aedes and HTTP on 127.0.0.1.
 */
import { describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { clearRollout, publishRollout, serveImage, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

const has = (id: string, state: string) => f.observer.statuses(id).some((s) => s.state === state);

describe('download', () => {
  it('resumes a download cut off mid-way with a Range request instead of starting over', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    const name = `${id}.img`;
    const artifact = serveImage(f, name, 'resumable', 256 * 1024);
    f.artifacts.cutAfter.set(name, 100_000);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => has(id, 'committed'), 'committed');
    const reqs = f.artifacts.requests.filter((r) => r.path === name);
    expect(reqs[0]).toMatchObject({ range: undefined, status: 200 });
    // The server destroys the socket after writing 100,000 bytes; whatever reached the device is kept.
    expect(reqs[1]!.status).toBe(206);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(reqs[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(100_000);
    expect(reqs).toHaveLength(2);
  });

  it('resumes with Range after a power loss in the middle of the download', async () => {
    const id = uniqueId('dev');
    const { dev, config } = await startDevice(f, id);
    f.devices.push(dev);
    const name = `${id}.img`;
    const artifact = serveImage(f, name, 'power-loss', 256 * 1024);
    f.artifacts.stallAfter.set(name, 65_536);
    const partial = join(config.dataDir, 'downloads');
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact });
    await waitFor(() => f.artifacts.requests.length === 1, 'first request');
    await waitFor(() => has(id, 'downloading'), 'downloading');
    await waitFor(() => dev.agent!.state.job?.stage === 'downloading', 'downloading stage');
    // Let the 64 KiB reach the disk, then cut the power.
    await waitFor(() => sizeOf(join(partial, `${dep}.img`)) >= 65_536, 'partial file on disk');
    await dev.powerLoss();
    await waitFor(() => has(id, 'committed'), 'committed after power loss', 15_000);
    const reqs = f.artifacts.requests.filter((r) => r.path === name);
    expect(reqs.at(-1)).toMatchObject({ range: 'bytes=65536-', status: 206 });
    expect(dev.agent!.state.counters.crashes).toBe(1);
  });

  it('a resumed download whose bytes fail the hash starts again from zero once, and installs', async () => {
    const id = uniqueId('dev');
    const { dev, config } = await startDevice(f, id);
    f.devices.push(dev);
    const name = `${id}.img`;
    const artifact = serveImage(f, name, 'torn-partial', 256 * 1024);
    f.artifacts.stallAfter.set(name, 65_536);
    const dep = uniqueId('dep');
    const partial = join(config.dataDir, 'downloads', `${dep}.img`);
    await publishRollout(f, id, dep, { artifact });
    await waitFor(() => sizeOf(partial) >= 65_536, 'partial file on disk');
    // What a power loss can leave: the kept bytes are not what the server sent.
    const fh = await open(partial, 'r+');
    await fh.write(Buffer.alloc(4096, 'X'), 0, 4096, 0);
    await fh.close();
    await dev.powerLoss();
    await waitFor(() => has(id, 'committed'), 'committed after starting over', 15_000);
    const reqs = f.artifacts.requests.filter((r) => r.path === name);
    expect(reqs.map((r) => [r.status, r.range])).toEqual([
      [200, undefined],
      [206, 'bytes=65536-'],
      [200, undefined],
    ]);
    expect(has(id, 'failed')).toBe(false);
  });

  it('a resumed download that fails the hash again from zero fails the update with hash-mismatch', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    const name = `${id}.img`;
    // The server holds other bytes than the signed manifest names.
    const artifact = { ...serveImage(f, name, 'not-what-was-signed', 256 * 1024), sha256: 'c'.repeat(64) };
    f.artifacts.cutAfter.set(name, 100_000);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => has(id, 'failed'), 'failed');
    expect(f.observer.statuses(id).at(-1)).toMatchObject({ state: 'failed', reason: 'hash-mismatch' });
    expect(f.observer.statuses(id).at(-1)!.detail).toMatch(/again from zero/);
    const reqs = f.artifacts.requests.filter((r) => r.path === name);
    expect(reqs.map((r) => r.status)).toEqual([200, 206, 200]);
    expect(has(id, 'rebooting')).toBe(false);
  });

  it('gives up after a bounded number of attempts on a 404, with backoff', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    const artifact = { url: f.artifacts.url('missing.img'), size: 1000, sha256: 'b'.repeat(64) };
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => has(id, 'failed'), 'failed');
    expect(f.observer.statuses(id).at(-1)).toMatchObject({ state: 'failed', reason: 'download-failed' });
    expect(f.artifacts.requests.filter((r) => r.path === 'missing.img')).toHaveLength(4); // config maxAttempts
  });

  it('a busy server (503) is flow control: refused more often than the attempt limit, the device still installs', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    const name = `${id}.img`;
    const artifact = serveImage(f, name, 'busy-server');
    f.artifacts.busyFor.set(name, 6); // config maxAttempts is 4
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => has(id, 'committed'), 'committed after the server stopped refusing');
    const reqs = f.artifacts.requests.filter((r) => r.path === name);
    expect(reqs.map((r) => r.status)).toEqual([503, 503, 503, 503, 503, 503, 200]);
    expect(has(id, 'failed')).toBe(false);
  });

  it('an abort while downloading stops the download, reports it, and never reboots into the update', async () => {
    const id = uniqueId('dev');
    const { dev, slots } = await startDevice(f, id);
    f.devices.push(dev);
    const name = `${id}.img`;
    const artifact = serveImage(f, name, 'aborted', 256 * 1024);
    f.artifacts.stallAfter.set(name, 10_000);
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact });
    await waitFor(() => has(id, 'downloading'), 'downloading');
    await clearRollout(f, id);
    await waitFor(() => has(id, 'failed'), 'failed');
    expect(f.observer.statuses(id).at(-1)).toMatchObject({ state: 'failed', reason: 'aborted', deploymentId: dep });
    const boot = await slots.state();
    expect(boot).toMatchObject({ primary: 'A', booted: 'A', trial: null, powerOns: 1 });
    expect(boot.slots.B).toBeNull();
    expect(dev.agent!.state.job).toMatchObject({ stage: 'done', result: 'failed' });
  });
});

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
