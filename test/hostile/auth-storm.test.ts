/**
 * Hostile: an authentication storm — 64 parallel wrong-password loops against a provisioned device,
 * from other source addresses, in another process — against `fleet coordinator start` (production
 * credential cost). Device secrets are checked as sha256 (microseconds), so the throttle is what
 * slows the loops: failed logins are throttled per client id and per address without a check, and a
 * device connecting for the first time from elsewhere still gets in, and so does the attacked device
 * itself with the secret it used before.
 * Timing is printed (the machine may be busy); the figures are in the hostile suite's README.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { repoRoot, spawnProcess, tsLoader } from '../support/processes.js';
import { startCoordinatorProcess, waitFor } from './hostile-harness.js';

describe('hostile: authentication storm', () => {
  it('keeps a first connect from elsewhere working under 64 wrong-password loops', { timeout: 180_000 }, async () => {
    const c = await startCoordinatorProcess();
    const secrets = await c.provision(['victim', 'first-1', 'first-2']);
    // The victim connected once before the storm: its secret is known good.
    const v = await mqtt.connectAsync(c.mqttUrl, { clientId: 'victim', username: 'victim', password: secrets.get('victim')!, reconnectPeriod: 0 });
    await v.endAsync(true);

    const stormStarted = Date.now();
    const storm = spawnProcess(process.execPath, ['--import', tsLoader, join(repoRoot, 'test/hostile/auth-storm-child.ts'), String(c.port), 'victim', '64', '2', '4']);
    try {
      const progress = (): { attempts: number; outcomes: Record<string, number> } => JSON.parse(storm.lines.filter((l) => l.startsWith('{')).at(-1) ?? '{"attempts":0,"outcomes":{}}') as never;
      await waitFor(() => progress().attempts >= 200, 'the storm under way', 60_000);

      const times: number[] = [];
      for (const id of ['first-1', 'first-2', 'victim']) {
        const t0 = performance.now();
        const cl = await mqtt.connectAsync(c.mqttUrl, { clientId: id, username: id, password: secrets.get(id)!, reconnectPeriod: 0, connectTimeout: 30_000 });
        times.push(Math.round(performance.now() - t0));
        expect(cl.connected).toBe(true);
        await cl.endAsync(true);
      }
      console.log(`first connect under the storm: ${times[0]} ms, ${times[1]} ms; the attacked device (known secret): ${times[2]} ms`);

      const { attempts, outcomes } = progress();
      // Throttled refusals (3 = server unavailable) far outnumber real password checks (4 = bad password).
      expect(outcomes['rc4'] ?? 0).toBeLessThan(attempts / 10);
      expect(outcomes['rc0'] ?? 0).toBe(0);
      const counters = await c.counters();
      expect(counters['mqtt.auth.throttled']).toBeGreaterThan(0);
      expect(counters['anomalies.login-throttled']).toBeGreaterThan(0);
      const anomalies = (await c.api<{ anomalies: { kind: string; count: number }[] }>('GET', '/v1/devices/victim')).body.anomalies;
      expect(anomalies.find((a) => a.kind === 'login-throttled')?.count).toBeGreaterThan(0);
      // Logged with the offending addresses, a line per address per 10 s: not one per attempt.
      const refusals = c.logs().filter((l) => l['msg'] === 'device connection refused');
      expect(refusals.some((l) => String(l['address']).startsWith('127.0.0.') && l['address'] !== '127.0.0.1')).toBe(true);
      const intervals = Math.ceil((Date.now() - stormStarted) / 10_000) + 1;
      expect(refusals.length).toBeLessThanOrEqual(4 * intervals);
      expect(refusals.length).toBeLessThan(attempts);
    } finally {
      await storm.stop();
    }
    expect((await c.api('GET', '/v1/health')).status).toBe(200);
  });
});
