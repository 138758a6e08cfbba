/**
 * The small trust-boundary holes, against a real coordinator (embedded broker, SQLite, HTTP on
 * 127.0.0.1): malformed percent-escapes in admin URLs, custom telemetry metrics beyond their bounds,
 * a maintenance window that can never open, and database files readable by other users.
 */
import { chmodSync, existsSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { Readable, Writable } from 'node:stream';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { deviceTopic } from '../../protocol/topics.js';
import { api, startCoordinator, telemetryPayload, tempDir, uniqueId, waitFor } from '../coordinator/helpers.js';

/** A coordinator whose log lines a test can read. */
async function coordinatorWithLog(dataDir: string): Promise<{ c: Coordinator; log: Record<string, unknown>[] }> {
  const log: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) log.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const c = await startCoordinator(dataDir, { logger: pino({ level: 'info' }, sink) });
  onTestFinished(() => c.stop());
  return { c, log };
}

function fresh(): string {
  const t = tempDir('fleet-hostile-');
  onTestFinished(t.cleanup);
  return join(t.dir, 'data');
}

/** A raw GET: fetch would normalise some of these paths before sending them. */
function rawGet(base: string, path: string, token: string): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin URLs with malformed percent-escapes', () => {
  it('answer 400 naming the segment, with no stack trace and nothing logged as an internal error', async () => {
    const { c, log } = await coordinatorWithLog(fresh());
    for (const path of ['/v1/devices/%zz', '/v1/devices/%', '/v1/devices/%E0%A4%A', '/v1/deployments/%C0%AF/decisions', '/v1/devices/ok%FF/credentials']) {
      const res = await rawGet(c.httpUrl, path, c.adminToken);
      expect(res.status, path).toBe(400);
      expect(res.type).toMatch(/application\/json/);
      const body = JSON.parse(res.body) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('bad-url');
      expect(body.error.message).toMatch(/malformed percent-escape; encode "%" as %25/);
      expect(res.body).not.toMatch(/URIError|\n\s+at /);
    }
    // Well-formed escapes are still decoded.
    const ok = await rawGet(c.httpUrl, '/v1/devices/no%2Dsuch', c.adminToken);
    expect(ok.status).toBe(404);
    expect(ok.body).toContain('no device no-such');
    expect(log.filter((l) => l['level'] === 50)).toEqual([]);
  });
});

describe('custom telemetry metrics', () => {
  it('over 64, outside +-1e15 or badly named: the message is refused and counted with its sender', async () => {
    const { c, log } = await coordinatorWithLog(fresh());
    const id = uniqueId('custom');
    const [cred] = await c.provisionDevices([id]);
    const client = await mqtt.connectAsync(c.mqttUrl, { clientId: id, username: id, password: cred!.secret, reconnectPeriod: 0 });
    onTestFinished(() => client.endAsync(true));
    const metrics = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`m.${i}`, i]));
    const send = (seq: number, custom: Record<string, number>) =>
      client.publishAsync(deviceTopic(id, 'telemetry'), telemetryPayload(id, seq, { custom }), { qos: 1 });

    await send(1, metrics(64));
    await send(2, { 'disk.bytes': 4e12, 'temp.delta': -1e15 });
    await waitFor(async () => (await c.flush(), c.counter('ingest.telemetry') === 2), 'the two messages within bounds');

    await send(3, metrics(65));
    // 5,000 fit in one MQTT packet (~75 KB); a message far larger is closed at the packet limit
    // before it is read (packets.test.ts).
    await send(4, metrics(5_000));
    await send(5, { huge: 1e16 });
    await send(6, { 'bad name': 1 });
    await waitFor(async () => (await c.flush(), c.counter('ingest.bad.telemetry') === 4), 'four refused messages');
    expect(c.counter('ingest.telemetry')).toBe(2);
    const refusals = log.filter((l) => l['msg'] === 'bad device message dropped' && l['deviceId'] === id).map((l) => String(l['reason']));
    expect(refusals.filter((r) => r.includes('at most 64 custom metrics'))).toHaveLength(2);
    expect(refusals.some((r) => /custom\.huge/.test(r))).toBe(true);
  });
});

describe('maintenance windows', () => {
  it('a window that can never open is refused when the deployment is created', async () => {
    const { c } = await coordinatorWithLog(fresh());
    await c.uploadFirmware({ image: Readable.from([Buffer.alloc(1024, 1)]), version: '1.1.0', hardware: ['rpi4'] });
    const body = (cron: string) => ({
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'], versionRange: '*', tags: [] },
      maintenanceWindows: [{ cron, durationMs: 3_600_000 }],
    });
    for (const [cron, why] of [
      ['0 0 31 2 *', /day of month 31 never falls in Feb/],
      ['0 0 30,31 feb *', /day of month 30,31 never falls in Feb/],
      ['0 3 31 4,6,9,11 *', /never falls in Apr,Jun,Sep,Nov/],
    ] as const) {
      const res = await api<{ error: { code: string; message: string } }>(c, 'POST', '/v1/deployments', body(cron));
      expect(res.status, cron).toBe(400);
      expect(res.body.error.code).toBe('invalid-input');
      expect(res.body.error.message).toMatch(/maintenanceWindows\.0\.cron: .* never opens: /);
      expect(res.body.error.message).toMatch(why);
    }
    expect((await api<{ deployments: unknown[] }>(c, 'GET', '/v1/deployments')).body.deployments).toEqual([]);
    // A leap day comes round: the window passes, and the deployment is refused only for having no devices.
    const leap = await api<{ error: { code: string } }>(c, 'POST', '/v1/deployments', body('0 0 29 2 *'));
    expect(leap.body.error.code).toBe('no-eligible-devices');
  });
});

describe('database files', () => {
  it('fleet.db and telemetry.db (and their WAL files) are 0600, and older 0644 files are narrowed', async () => {
    const dataDir = fresh();
    const files = ['fleet.db', 'fleet.db-wal', 'fleet.db-shm', 'telemetry.db', 'telemetry.db-wal', 'telemetry.db-shm'].map((f) => join(dataDir, f));
    const modes = () => Object.fromEntries(files.filter((f) => existsSync(f)).map((f) => [f.slice(dataDir.length + 1), (statSync(f).mode & 0o777).toString(8)]));
    const first = await startCoordinator(dataDir);
    await first.flush();
    expect(modes()).toEqual(Object.fromEntries(files.map((f) => [f.slice(dataDir.length + 1), '600'])));
    await first.stop();
    for (const f of files) if (existsSync(f)) chmodSync(f, 0o644);
    const second = await startCoordinator(dataDir);
    onTestFinished(() => second.stop());
    for (const mode of Object.values(modes())) expect(mode).toBe('600');
    expect(modes()['fleet.db']).toBe('600');
    expect(modes()['telemetry.db']).toBe('600');
  });
});
