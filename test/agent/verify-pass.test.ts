/**
 * The verifying stage reads the downloaded file again only when the download's own streaming sha256
 * does not prove it: a download fetched whole in this agent process is not re-hashed; a resumed one, and
 * any download after a restart, is. The slot's read-back still checks what was installed. Real Aedes
 * and HTTP on 127.0.0.1, the file slot backend.
 */
import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { HttpDownloader, type Downloader, type DownloadOutcome } from '../../agent/downloader.js';
import { verifyTask } from '../../agent/agent-tasks.js';
import { StreamedDownloads } from '../../agent/streamed-downloads.js';
import { publishRollout, serveImage, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

const has = (id: string, state: string) => f.observer.statuses(id).some((s) => s.state === state);

/** The agent's HTTP downloader, counting the verify passes (`digest`) and able to hold a finished download. */
function countingDownloader(hold?: Promise<void>): Downloader & { digests: number; downloads: DownloadOutcome[] } {
  const http = new HttpDownloader();
  let held = false;
  const d = {
    digests: 0,
    downloads: [] as DownloadOutcome[],
    async download(...args: Parameters<Downloader['download']>): Promise<DownloadOutcome> {
      const outcome = await http.download(...args);
      d.downloads.push(outcome);
      if (hold && !held) {
        held = true;
        await hold;
      }
      return outcome;
    },
    digest(path: string) {
      d.digests++;
      return http.digest(path);
    },
    discard: (path: string) => http.discard(path),
  };
  return d;
}

describe('the verify pass', () => {
  it('is not repeated for a download streamed whole in this process; the slot read back holds the signed image', async () => {
    const id = uniqueId('dev');
    const downloader = countingDownloader();
    const { dev, slots } = await startDevice(f, id, {}, { downloader });
    f.devices.push(dev);
    const artifact = serveImage(f, `${id}.img`, 'whole', 256 * 1024);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => has(id, 'committed'), 'committed');
    expect(f.observer.statuses(id).map((s) => s.state)).toContain('verifying');
    expect(downloader.downloads).toMatchObject([{ ok: true, resumedFrom: 0, sha256: artifact.sha256 }]);
    expect(downloader.digests).toBe(0);
    const boot = await slots.state();
    expect(boot.slots[boot.booted]).toEqual({ size: artifact.size, sha256: artifact.sha256 });
    expect(createHash('sha256').update(await readFile(slots.slotPath(boot.booted))).digest('hex')).toBe(artifact.sha256);
  });

  it('hashes a resumed download again', async () => {
    const id = uniqueId('dev');
    const downloader = countingDownloader();
    const { dev } = await startDevice(f, id, {}, { downloader });
    f.devices.push(dev);
    const name = `${id}.img`;
    const artifact = serveImage(f, name, 'resumed', 256 * 1024);
    f.artifacts.cutAfter.set(name, 100_000);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => has(id, 'committed'), 'committed');
    expect(downloader.downloads.at(-1)).toMatchObject({ ok: true, sha256: artifact.sha256 });
    expect((downloader.downloads.at(-1) as { resumedFrom: number }).resumedFrom).toBeGreaterThan(0);
    expect(downloader.digests).toBe(1);
  });

  it('hashes the file again after a restart: what was streamed before it is not trusted', async () => {
    const id = uniqueId('dev');
    let release!: () => void;
    const downloader = countingDownloader(new Promise<void>((r) => (release = r)));
    const { dev } = await startDevice(f, id, {}, { downloader });
    f.devices.push(dev);
    const artifact = serveImage(f, `${id}.img`, 'restart', 256 * 1024);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    // The whole image is on disk and its streaming digest matched, but the agent loses power before
    // it acts on it: the next agent finds the file complete and must read it to know what it holds.
    await waitFor(() => downloader.downloads.length === 1, 'first download finished');
    expect(downloader.downloads[0]).toMatchObject({ ok: true, resumedFrom: 0 });
    await dev.powerLoss();
    release();
    await waitFor(() => has(id, 'committed'), 'committed after the restart', 15_000);
    expect(downloader.downloads.at(-1)).toMatchObject({ ok: true, resumedFrom: artifact.size });
    expect(downloader.digests).toBe(1);
  });
});

describe('verifyTask', () => {
  it('trusts only a whole streamed download of this artifact, once; anything else is hashed and a changed file fails', async () => {
    const path = join(f.dir, 'verify-task.img');
    const body = Buffer.alloc(4096, 7);
    await writeFile(path, body);
    const artifact = { url: 'http://127.0.0.1/x', size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
    const downloader = countingDownloader();
    const streamed = new StreamedDownloads();
    const whole: DownloadOutcome = { ok: true, size: artifact.size, sha256: artifact.sha256, resumedFrom: 0 };

    streamed.record(path, artifact, whole);
    expect(await verifyTask(downloader, 'd', artifact, path, streamed)).toEqual({ type: 'verify-done', deploymentId: 'd', ok: true });
    expect(downloader.digests).toBe(0);

    // Taken once: the next verify of the same path reads the file.
    await writeFile(path, Buffer.alloc(4096, 8));
    expect(await verifyTask(downloader, 'd', artifact, path, streamed)).toMatchObject({ ok: false });
    expect(downloader.digests).toBe(1);

    // Not recorded: resumed, another image's digest, a failed download; and a forgotten one.
    for (const outcome of [
      { ...whole, resumedFrom: 1 },
      { ...whole, sha256: '0'.repeat(64) },
      { ok: false, reason: 'hash-mismatch', detail: 'x', retryable: false } as const,
    ] satisfies DownloadOutcome[]) {
      streamed.record(path, artifact, outcome);
      expect(await verifyTask(downloader, 'd', artifact, path, streamed)).toMatchObject({ ok: false });
    }
    streamed.record(path, artifact, whole);
    streamed.forget(path);
    expect(await verifyTask(downloader, 'd', artifact, path, streamed)).toMatchObject({ ok: false });
    expect(downloader.digests).toBe(5);
    // A record for one artifact says nothing about another.
    streamed.record(path, artifact, whole);
    expect(await verifyTask(downloader, 'd', { ...artifact, sha256: 'f'.repeat(64) }, path, streamed)).toMatchObject({ ok: false });
    expect(downloader.digests).toBe(6);
  });
});
