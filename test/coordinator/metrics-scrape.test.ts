/**
 * GET /metrics scraped from a real coordinator on 127.0.0.1 while real agents roll a release out and
 * back: the exposition parses strictly, carries the series the operator console promises (connections,
 * messages in/out/refused, telemetry stored, deployments by phase, wave progress, gate verdicts by
 * analyzer and rule, rollbacks, downloads and bytes, HTTP latency by route), and they move. Also the
 * token rule and FLEET_METRICS_PUBLIC, with two coordinators (two registries) in one process.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { deviceTopic } from '../../protocol/topics.js';
import { parseExposition, sampleValue, type Family } from '../support/prometheus-text.js';
import { api, startCoordinator, tempDir, uniqueId, waitFor } from './helpers.js';
import { IMAGE_SIZE, fastWaves, startFleet, uploadImage } from './fleet-harness.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function scrape(c: Coordinator, token: string | null = c.adminToken): Promise<{ status: number; contentType: string | null; families: Map<string, Family> }> {
  const res = await fetch(`${c.httpUrl}/metrics`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), families: res.status === 200 ? parseExposition(text) : new Map<string, Family>() };
}

/** The families the issue names, by what they show. */
const PROMISED = [
  'fleet_mqtt_connections',
  'fleet_messages_received_total',
  'fleet_messages_sent_total',
  'fleet_messages_refused_total',
  'fleet_telemetry_stored_total',
  'fleet_telemetry_dropped_total',
  'fleet_deployments',
  'fleet_wave_devices',
  'fleet_gate_decisions_total',
  'fleet_gate_analyzer_verdicts_total',
  'fleet_gate_analyzer_duration_seconds',
  'fleet_rollbacks_total',
  'fleet_rollback_devices',
  'fleet_artifact_downloads_total',
  'fleet_artifact_bytes_sent_total',
  'fleet_http_request_duration_seconds',
];

describe('GET /metrics', () => {
  it('shows a rollout and its rollback as they happen', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c = await startCoordinator(dir);
    stops.push(() => c.stop());
    const fleet = await startFleet(c, dir, 6, { telemetryMs: 200 });
    stops.push(() => fleet.stop());

    const first = await scrape(c);
    expect(first.status).toBe(200);
    expect(first.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of PROMISED) expect(first.families.has(name), `${name} is exported`).toBe(true);
    for (const f of first.families.values()) expect(f.help.length, `${f.name} has HELP`).toBeGreaterThan(0);
    expect(sampleValue(first.families, 'fleet_mqtt_connections')).toBe(6);
    expect(sampleValue(first.families, 'fleet_devices_known')).toBe(6);
    expect(sampleValue(first.families, 'fleet_messages_received_total', { channel: 'hello' })).toBeGreaterThanOrEqual(6);
    expect(sampleValue(first.families, 'fleet_deployments', { phase: 'completed' })).toBe(0);
    // No label anywhere names a device.
    const ids = new Set(fleet.devices.map((d) => d.id));
    for (const f of first.families.values()) for (const s of f.samples) for (const v of Object.values(s.labels)) expect(ids.has(v), `${s.name} labelled with a device id`).toBe(false);

    await uploadImage(c, '1.1.0');
    const created = await api<{ id: string }>(c, 'POST', '/v1/deployments', {
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: fastWaves([50, 100]),
      gatePolicy: { minReportingDevices: 1 },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    // Mid-rollout: the live deployment's waves are there with their device counts.
    await waitFor(async () => {
      const m = await scrape(c);
      return (sampleValue(m.families, 'fleet_wave_devices', { deployment: id, state: 'tracked' }) ?? 0) > 0;
    }, 'a scrape that shows the first wave', 60_000, 100);
    await waitFor(async () => (await api<{ phase: string }>(c, 'GET', `/v1/deployments/${id}`)).body.phase === 'completed', 'deployment completed', 60_000, 100);
    await waitFor(async () => (sampleValue((await scrape(c)).families, 'fleet_telemetry_stored_total') ?? 0) > 0, 'telemetry stored', 20_000, 100);

    const done = (await scrape(c)).families;
    const v = (name: string, labels: Record<string, string> = {}): number => sampleValue(done, name, labels) ?? 0;
    expect(v('fleet_deployments', { phase: 'completed' })).toBe(1);
    expect(v('fleet_wave_devices', { deployment: id, state: 'committed' })).toBe(6);
    expect(v('fleet_wave_percent', { deployment: id, wave: '2' })).toBe(100);
    expect(v('fleet_messages_received_total', { channel: 'status' })).toBeGreaterThan(6);
    expect(v('fleet_messages_received_total', { channel: 'telemetry' })).toBeGreaterThan(0);
    expect(v('fleet_messages_sent_total', { kind: 'manifest' })).toBeGreaterThan(0);
    expect(v('fleet_artifact_downloads_started_total')).toBeGreaterThanOrEqual(6);
    expect(v('fleet_artifact_downloads_total', { outcome: 'completed' })).toBeGreaterThanOrEqual(6);
    expect(v('fleet_artifact_bytes_sent_total')).toBeGreaterThanOrEqual(6 * IMAGE_SIZE);
    // Every wave was judged: a gate (hard gates, in these tests) or an empty wave.
    expect(v('fleet_gate_decisions_total', { verdict: 'Proceed' })).toBe(2);
    const gates = v('fleet_gate_decisions_total', { source: 'gate' });
    expect(v('fleet_gate_analyzer_verdicts_total', { analyzer: 'hard-gates', verdict: 'Proceed' })).toBe(gates);
    expect(v('fleet_gate_analyzer_duration_seconds_count', { analyzer: 'hard-gates' })).toBe(gates);
    expect(v('fleet_gate_duration_seconds_count')).toBe(gates);
    expect(v('fleet_http_request_duration_seconds_count', { route: '/v1/deployments', method: 'POST', status: '201' })).toBe(1);
    expect(v('fleet_http_request_duration_seconds_count', { route: '/v1/deployments/:id', method: 'GET', status: '200' })).toBeGreaterThan(0);
    expect(v('fleet_http_request_duration_seconds_count', { route: '/artifacts/:sha256', method: 'GET' })).toBeGreaterThanOrEqual(6);

    // The rollback: commands out, devices confirmed back, the rollback started and finished.
    expect((await api(c, 'POST', `/v1/deployments/${id}/actions`, { type: 'rollback', reason: 'metrics test' })).status).toBe(200);
    await waitFor(async () => (await api<{ phase: string }>(c, 'GET', `/v1/deployments/${id}`)).body.phase === 'rolled-back', 'rolled back', 60_000, 100);
    const back = (await scrape(c)).families;
    expect(sampleValue(back, 'fleet_rollbacks_total', { event: 'started' })).toBe(1);
    expect(sampleValue(back, 'fleet_rollbacks_total', { event: 'finished' })).toBe(1);
    expect(sampleValue(back, 'fleet_rollback_devices', { outcome: 'exposed' })).toBe(6);
    expect(sampleValue(back, 'fleet_rollback_devices', { outcome: 'confirmed' })).toBe(6);
    expect(sampleValue(back, 'fleet_rollback_devices', { outcome: 'unreachable' })).toBe(0);
    expect(sampleValue(back, 'fleet_commands_sent_total', { action: 'rollback' })).toBeGreaterThanOrEqual(6);
    expect(sampleValue(back, 'fleet_deployments', { phase: 'rolled-back' })).toBe(1);

    // A device sending garbage is refused and counted by reason.
    const rogue = uniqueId('rogue');
    const [cred] = await c.provisionDevices([rogue], { hardwareModel: 'rpi4' });
    const client = await mqtt.connectAsync(c.mqttUrl, { clientId: rogue, username: rogue, password: cred!.secret, reconnectPeriod: 0 });
    stops.push(() => client.endAsync());
    await client.publishAsync(deviceTopic(rogue, 'status'), 'not json', { qos: 1 });
    await waitFor(async () => (sampleValue((await scrape(c)).families, 'fleet_messages_refused_total', { reason: 'bad-status' }) ?? 0) === 1, 'the bad status counted', 10_000, 50);
  });

  it('needs a token unless the operator opens it; each coordinator has its own registry', { timeout: 60_000 }, async () => {
    const a = tempDir();
    const b = tempDir();
    stops.push(a.cleanup, b.cleanup);
    const closed = await startCoordinator(a.dir);
    stops.push(() => closed.stop());
    const open = await startCoordinator(b.dir, { env: { FLEET_METRICS_PUBLIC: '1' } });
    stops.push(() => open.stop());

    const refused = await scrape(closed, null);
    expect(refused.status).toBe(401);
    expect((await scrape(closed, 'not-the-token')).status).toBe(401);
    expect((await scrape(closed)).status).toBe(200);
    const anyone = await scrape(open, null);
    expect(anyone.status).toBe(200);

    await closed.provisionDevices(['m-1', 'm-2'], { hardwareModel: 'rpi4' });
    const closedM = (await scrape(closed)).families;
    const openM = (await scrape(open, null)).families;
    expect(sampleValue(closedM, 'fleet_devices_known')).toBe(2);
    expect(sampleValue(openM, 'fleet_devices_known')).toBe(0);
    // The refused scrape was measured on its own coordinator only.
    expect(sampleValue(closedM, 'fleet_http_request_duration_seconds_count', { route: '/metrics', status: '401' })).toBe(2);
    expect(sampleValue(openM, 'fleet_http_request_duration_seconds_count', { route: '/metrics', status: '401' })).toBeUndefined();
  });
});
