/**
 * The agent's downloader against the coordinator's authenticated artifact server (real coordinator,
 * real HTTP on 127.0.0.1): it answers the Basic challenge with the device's credentials and sends
 * them up front from then on (the challenge is not logged as a refusal), resumes with Range, says clearly why when it may not or must not send
 * them, and never shows them to a server that does not ask (a third-party URL in an offline-signed
 * manifest).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpDownloader } from '../../agent/index.js';
import type { Coordinator } from '../../coordinator/index.js';
import { startCoordinator, tempDir } from '../coordinator/helpers.js';

const image = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
const sha256 = createHash('sha256').update(image).digest('hex');

let c: Coordinator;
let dir: string;
let cleanup: () => void;
let url: string;
let credentials: { username: string; password: string };
const signal = new AbortController().signal;
/** The coordinator's warnings and errors (pino JSON lines). */
let warnings: { msg: string; reason?: string }[];

beforeEach(async () => {
  ({ dir, cleanup } = tempDir('fleet-dl-auth-'));
  warnings = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line) as { msg: string; reason?: string }) });
  c = await startCoordinator(join(dir, 'coordinator'), { logger });
  await c.uploadFirmware({ image: Readable.from([image]), version: '2.0.0', hardware: ['rpi4'] });
  url = `${c.httpUrl}/artifacts/${sha256}`;
  const [dev] = await c.provisionDevices(['agent-dl-1'], { hardwareModel: 'rpi4' });
  credentials = { username: dev!.deviceId, password: dev!.secret };
});

afterEach(async () => {
  await c.stop();
  cleanup();
});

const dest = (name: string): string => join(dir, 'downloads', name);

describe('downloads from an authenticating artifact server', () => {
  it('answers the challenge with the device credentials, then sends them up front; resumes with Range', async () => {
    const dl = new HttpDownloader({ credentials, plainHttpCredentials: true });
    const first = await dl.download({ url, size: image.length, sha256, dest: dest('a.img') }, { signal });
    expect(first).toMatchObject({ ok: true, sha256, resumedFrom: 0 });
    expect(c.counter('artifacts.auth.missing')).toBe(1);

    mkdirSync(join(dir, 'downloads'), { recursive: true });
    writeFileSync(dest('b.img'), image.subarray(0, 120_000));
    const resumed = await dl.download({ url, size: image.length, sha256, dest: dest('b.img') }, { signal });
    expect(resumed).toMatchObject({ ok: true, sha256, resumedFrom: 120_000 });
    expect(c.counter('artifacts.auth.missing')).toBe(1); // no second challenge
    expect(c.counter('artifacts.completed')).toBe(2);
    // The challenge is how every agent's first download starts: no refusal in the log.
    expect(warnings.filter((w) => /download refused/.test(w.msg))).toEqual([]);
  });

  it('fails for good, saying why, on refused credentials or credentials it may not send over http', async () => {
    const wrong = new HttpDownloader({ credentials: { ...credentials, password: 'not-it' }, plainHttpCredentials: true });
    expect(await wrong.download({ url, size: image.length, sha256, dest: dest('c.img') }, { signal })).toMatchObject({
      ok: false,
      retryable: false,
      detail: expect.stringContaining("refused this device's credentials") as unknown,
    });
    const tlsOnly = new HttpDownloader({ credentials });
    expect(await tlsOnly.download({ url, size: image.length, sha256, dest: dest('d.img') }, { signal })).toMatchObject({
      ok: false,
      retryable: false,
      detail: expect.stringContaining('only over https') as unknown,
    });
    expect(c.counter('artifacts.auth.refused')).toBe(1);
    expect(c.counter('artifacts.auth.missing')).toBe(2);
    // A secret refused is a refusal the operator sees.
    expect(warnings.filter((w) => /download refused/.test(w.msg)).map((w) => w.reason)).toEqual(['credentials refused']);
  });

  it('never sends the credentials to a server that does not ask for them', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const thirdParty = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-length': image.length }).end(image);
    });
    await new Promise<void>((resolve) => thirdParty.listen(0, '127.0.0.1', resolve));
    try {
      const elsewhere = `http://127.0.0.1:${(thirdParty.address() as AddressInfo).port}/fw.img`;
      const dl = new HttpDownloader({ credentials, plainHttpCredentials: true });
      // The coordinator asked this downloader for credentials; the other origin still gets none.
      expect((await dl.download({ url, size: image.length, sha256, dest: dest('e.img') }, { signal })).ok).toBe(true);
      expect((await dl.download({ url: elsewhere, size: image.length, sha256, dest: dest('f.img') }, { signal })).ok).toBe(true);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.authorization).toBeUndefined();
    } finally {
      thirdParty.closeAllConnections();
      await new Promise<void>((resolve) => thirdParty.close(() => resolve()));
    }
  });
});
