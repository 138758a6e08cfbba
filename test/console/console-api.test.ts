/**
 * The console's server side against a real coordinator with real agents on 127.0.0.1: the live event
 * stream, the fleet counts, a device's telemetry over time, a decision's canary and control series,
 * and the built page with its caching and security headers.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { CanarySnapshotSchema } from '../../protocol/canary.js';
import { CohortSeriesSchema, DeviceTelemetrySchema, FleetSummarySchema } from '../../protocol/console.js';
import { DeploymentViewSchema } from '../../protocol/deployment-view.js';
import { systemClock } from '../../protocol/clock.js';
import { embeddedCoordinator } from '../../simulator/coordinator-handles.js';
import { api, silentLogger, startCoordinator, tempDir, uniqueId, waitFor } from '../coordinator/helpers.js';
import { fastWaves, startFleet, uploadImage } from '../coordinator/fleet-harness.js';
import { openSse } from './sse-client.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function coordinator(config: NonNullable<Parameters<typeof startCoordinator>[1]>['config'] = {}): Promise<{ c: Coordinator; dir: string }> {
  const { dir, cleanup } = tempDir();
  stops.push(cleanup);
  const c = await startCoordinator(dir, { config: { ...config, http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 64, ...config.http } } });
  stops.push(() => c.stop());
  return { c, dir };
}

const auth = (c: Coordinator): Record<string, string> => ({ authorization: `Bearer ${c.adminToken}` });

describe('console API', () => {
  it('streams deployments, decisions, devices and audit entries live, and serves the reads the pages need', async () => {
    const { c, dir } = await coordinator();
    const fleet = await startFleet(c, dir, 6, { telemetryMs: 150 });
    stops.push(() => fleet.stop());
    const stream = await openSse(`${c.httpUrl}/v1/events`, auth(c));
    stops.push(() => stream.close());
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    // The coordinator's clock first, so the page can count soak time down in it.
    const clock = await stream.waitFor((e) => e.event === 'clock', 'clock event');
    expect((JSON.parse(clock.data) as { now: number }).now).toBeGreaterThan(0);

    await uploadImage(c, '1.1.0');
    const d = await c.createDeployment({
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [...fastWaves([50], 1500), { percent: 100, requiresApproval: true, soakMs: 300, deadlineMs: 30_000, minDevicesReporting: 1 }],
      gatePolicy: { minReportingDevices: 1 },
      bucketOffset: c.device(fleet.devices[0]!.id)!.bucket,
    });
    await waitFor(async () => (await c.deployment(d.id))?.waitingFor.includes('approval'), 'second wave waiting for approval', 60_000, 50);
    const phases = (): string[] =>
      stream.events.filter((e) => e.event === 'deployment').map((e) => JSON.parse(e.data) as { id: string; phase: string }).filter((v) => v.id === d.id).map((v) => v.phase);
    await waitFor(() => phases().includes('pending'), 'a pending deployment event');
    expect(phases()).toEqual(expect.arrayContaining(['rolling', 'soaking', 'gating']));
    const gate = (await c.deployment(d.id))!.decisions!.find((x) => x.source === 'gate')!;
    const decisionEvent = await stream.waitFor((e) => e.event === 'decision' && (JSON.parse(e.data) as { id: string }).id === gate.id, 'the gate decision');
    expect(JSON.parse(decisionEvent.data)).toMatchObject({ deploymentId: d.id, wave: 0, final: { recommendation: 'Proceed' } });
    // The canary's update states arrive as device events (at most one per device per second).
    const canary = fleet.devices[0]!.id;
    await stream.waitFor((e) => e.event === 'device' && (JSON.parse(e.data) as { deviceId: string; update: { state: string } | null }).deviceId === canary
      && (JSON.parse(e.data) as { update: { state: string } | null }).update?.state === 'committed', 'the canary committed');

    await c.act(d.id, { type: 'abort', reason: 'console test' }, 'operator:alice');
    await stream.waitFor((e) => e.event === 'audit' && (JSON.parse(e.data) as { action: string; subject: string }).subject === d.id, 'an audit entry for the deployment');
    await waitFor(() => phases().includes('rolled-back'), 'a rolled-back deployment event', 60_000);
    // Every deployment the console was sent, and the routes' answers, are the shape its types come from.
    for (const e of stream.events.filter((x) => x.event === 'deployment')) DeploymentViewSchema.parse(JSON.parse(e.data));
    expect(DeploymentViewSchema.parse((await api(c, 'GET', `/v1/deployments/${d.id}`)).body)).toMatchObject({ id: d.id, phase: 'rolled-back' });
    for (const view of (await api<{ deployments: unknown[] }>(c, 'GET', '/v1/deployments')).body.deployments) DeploymentViewSchema.parse(view);

    // The canary against the control, slot by slot, from the snapshot the gate judged.
    const cohorts = await api(c, 'GET', `/v1/deployments/${d.id}/decisions/${gate.id}/cohorts`);
    expect(cohorts.status).toBe(200);
    const series = CohortSeriesSchema.parse(cohorts.body);
    // Exactly what the stored snapshot holds (which devices had telemetry in a 1.5 s soak is the
    // machine's business): each cohort's devices, and one column entry per slot.
    const snapshot = CanarySnapshotSchema.parse((await api(c, 'GET', `/v1/deployments/${d.id}/decisions/${gate.id}/snapshot`)).body);
    expect(snapshot.v).toBe(2);
    expect(series.totals.canary.devices).toBe(snapshot.devices.filter((x) => x.cohort === 'canary').length);
    expect(series.totals.control.devices).toBe(snapshot.devices.filter((x) => x.cohort === 'control').length);
    expect(series.window).toEqual(snapshot.window);
    expect(series.t).toHaveLength(snapshot.slots!.count);
    expect(series.events.crashes.canary).toHaveLength(series.t.length);
    expect(series.events.crashes.control).toHaveLength(series.t.length);
    expect((await api(c, 'GET', `/v1/deployments/${d.id}/decisions/nope/cohorts`)).status).toBe(404);
    expect((await api(c, 'GET', `/v1/deployments/nope/decisions/${gate.id}/cohorts`)).status).toBe(404);

    // Fleet counts by model, version and update state.
    const summary = FleetSummarySchema.parse((await api(c, 'GET', '/v1/fleet/summary')).body);
    expect(summary.devices.total).toBe(6);
    expect(summary.models).toEqual([expect.objectContaining({ hardwareModel: 'rpi4', total: 6 })]);
    expect(summary.models[0]!.versions.reduce((s, v) => s + v.count, 0)).toBe(6);
    expect(Object.values(summary.updateStates).reduce((s, n) => s + n, 0)).toBe(6);

    // One device's telemetry over time.
    const tele = await waitFor(async () => {
      await c.flush();
      const read = DeviceTelemetrySchema.parse((await api(c, 'GET', `/v1/devices/${canary}/telemetry`)).body);
      return read.samples.reduce((s, n) => s + n, 0) > 0 ? read : undefined;
    }, 'telemetry stored', 10_000, 200);
    expect(tele.t).toHaveLength(tele.samples.length);
    expect(tele.versions.length).toBeGreaterThan(0);
    const windowed = DeviceTelemetrySchema.parse((await api(c, 'GET', `/v1/devices/${canary}/telemetry?from=${tele.from}&to=${tele.to}&slots=10`)).body);
    expect(windowed.t.length).toBeLessThanOrEqual(10);
    expect((await api(c, 'GET', `/v1/devices/${uniqueId('ghost')}/telemetry`)).status).toBe(404);
    expect((await api(c, 'GET', `/v1/devices/${canary}/telemetry?slots=100000`)).status).toBe(400);
  }, 120_000);

  it('refuses the event stream and the reads without a token', async () => {
    const { c } = await coordinator();
    for (const path of ['/v1/events', '/v1/fleet/summary', '/v1/devices/x/telemetry']) {
      expect((await api(c, 'GET', path, undefined, null)).status).toBe(401);
    }
  });

  it("follows a viewer's session: the web login's cookie opens the stream, and logging out ends it", async () => {
    const { c } = await coordinator();
    expect((await api(c, 'POST', '/v1/users', { name: 'vera', role: 'viewer', password: 'a viewer password' })).status).toBe(201);
    const login = await fetch(`${c.httpUrl}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'vera', password: 'a viewer password' }),
    });
    expect(login.status).toBe(200);
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const cookie = login.headers.getSetCookie()[0]!.split(';')[0]!;
    const stream = await openSse(`${c.httpUrl}/v1/events`, { cookie });
    stops.push(() => stream.close());
    expect(stream.response.status).toBe(200);
    await stream.waitFor((e) => e.event === 'clock', 'the clock');

    expect((await fetch(`${c.httpUrl}/v1/session`, { method: 'DELETE', headers: { cookie, 'x-csrf-token': csrfToken } })).status).toBe(204);
    // Ended at the next ping (every 15 s); EventSource then reconnects and is refused.
    await stream.ended;
    const again = await openSse(`${c.httpUrl}/v1/events`, { cookie });
    stops.push(() => again.close());
    expect(again.response.status).toBe(401);
  }, 60_000);

  it('says how to build the console when there is no build', async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const { c } = await coordinator({ http: { consoleDir: join(dir, 'missing') } });
    const res = await fetch(`${c.httpUrl}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/npm run build/);
  });
});

describe('the demo\'s dashboard', () => {
  it('is named by the simulator\'s embedded coordinator, with a token that the API accepts', async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const h = await embeddedCoordinator({ clock: systemClock, dataDir: dir, logger: silentLogger });
    stops.push(() => h.stop());
    expect(h.dashboard!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(h.dashboard!.url);
    // 503 with directions where this checkout has no build yet; either way the console's page.
    expect([200, 503]).toContain(page.status);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    const summary = await fetch(`${h.dashboard!.url}v1/fleet/summary`, { headers: { authorization: `Bearer ${h.dashboard!.token}` } });
    expect(summary.status).toBe(200);
  });
});

describe('the built console', () => {
  it('serves index.html uncached and hashed assets for a year, gzipped, with ETags and a same-origin CSP', async () => {
    const { dir: build, cleanup } = tempDir('fleet-console-build-');
    stops.push(cleanup);
    mkdirSync(join(build, 'assets'));
    writeFileSync(join(build, 'index.html'), '<!doctype html><script type="module" src="/assets/app-1a2b3c.js"></script>');
    const js = `console.log(${JSON.stringify('x'.repeat(4000))});`;
    writeFileSync(join(build, 'assets', 'app-1a2b3c.js'), js);
    const { c } = await coordinator({ http: { consoleDir: build } });

    const index = await fetch(`${c.httpUrl}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const csp = index.headers.get('content-security-policy')!;
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe|https?:|\*/);
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    const etag = index.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect((await fetch(`${c.httpUrl}/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const head = await fetch(`${c.httpUrl}/index.html`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('etag')).toBe(etag);
    expect(await head.text()).toBe('');

    // Raw bytes (no automatic decompression): node:http through a plain request.
    const { request } = await import('node:http');
    const raw = await new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      const req = request(`${c.httpUrl}/assets/app-1a2b3c.js`, { headers: { 'accept-encoding': 'gzip, br' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(raw.status).toBe(200);
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(raw.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(gunzipSync(raw.body).toString()).toBe(js);
    expect(raw.body.length).toBeLessThan(js.length);

    const missing = await fetch(`${c.httpUrl}/assets/nope.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('not-found');
    expect((await fetch(`${c.httpUrl}/assets/..%2Findex.html`)).status).toBe(404);
  });
});
