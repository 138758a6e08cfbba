/**
 * The verifying stage's digest after a download (real HTTP on 127.0.0.1, real files): the hash the
 * downloader computed while writing the file answers for it only while the file is the one it wrote;
 * a file changed in place since — same size, other bytes — is read and hashed again, and shows the
 * change. Whatever the stage says, the slot backend's read-back checks the installed bytes too.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpDownloader } from '../../agent/index.js';

const image = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13) % 256));
const sha256 = createHash('sha256').update(image).digest('hex');
const signal = new AbortController().signal;

let server: Server;
let url: string;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-dl-digest-'));
  server = createServer((_req, res) => res.writeHead(200, { 'content-length': image.length }).end(image));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe('digest of a downloaded file', () => {
  it('answers with the hash taken while downloading, and reads an untouched file the same', async () => {
    const dl = new HttpDownloader();
    const dest = join(dir, 'a.img');
    expect(await dl.download({ url, size: image.length, sha256, dest }, { signal })).toMatchObject({ ok: true, sha256 });
    expect(await dl.digest(dest)).toEqual({ size: image.length, sha256 });
    // Remembered once: the next digest reads the file, and finds the same.
    expect(await dl.digest(dest)).toEqual({ size: image.length, sha256 });
  });

  it('hashes the file again when it was changed in place after the download', async () => {
    const dl = new HttpDownloader();
    const dest = join(dir, 'b.img');
    expect(await dl.download({ url, size: image.length, sha256, dest }, { signal })).toMatchObject({ ok: true });
    // File times advance in clock ticks (a few ms): a change within the download's own tick is not seen
    // by the file's identity (the slot's read-back catches it); this test's change comes a tick later.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fh = await open(dest, 'r+');
    await fh.write(Buffer.from([image[1000]! ^ 0xff]), 0, 1, 1000);
    await fh.close();
    const d = await dl.digest(dest);
    expect(d.size).toBe(image.length);
    expect(d.sha256).not.toBe(sha256);
  });

  it('hashes a file replaced by another of the same size', async () => {
    const dl = new HttpDownloader();
    const dest = join(dir, 'c.img');
    expect(await dl.download({ url, size: image.length, sha256, dest }, { signal })).toMatchObject({ ok: true });
    const other = Buffer.alloc(image.length, 1);
    writeFileSync(`${dest}.new`, other);
    renameSync(`${dest}.new`, dest);
    expect(await dl.digest(dest)).toEqual({ size: other.length, sha256: createHash('sha256').update(other).digest('hex') });
  });

  it('a fresh downloader (a restarted agent) reads the file', async () => {
    const dest = join(dir, 'd.img');
    expect(await new HttpDownloader().download({ url, size: image.length, sha256, dest }, { signal })).toMatchObject({ ok: true });
    writeFileSync(dest, Buffer.alloc(image.length, 2));
    expect((await new HttpDownloader().digest(dest)).sha256).toBe(createHash('sha256').update(Buffer.alloc(image.length, 2)).digest('hex'));
  });
});
