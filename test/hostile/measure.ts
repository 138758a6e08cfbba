/**
 * Measurements behind the hostile suite's figures, against `fleet coordinator start` as a real process
 * (not a test: timings and memory depend on the machine). Run from the repository root:
 *
 *   node --import ./test/support/register-ts.js test/hostile/measure.ts preauth     # RSS under 5 sockets declaring 200 MB CONNECTs
 *   node --import ./test/support/register-ts.js test/hostile/measure.ts authstorm   # first connect under 64 wrong-password loops
 *
 * Prints one JSON line per measurement.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { freePort, repoRoot, spawnFleet, spawnProcess, tsLoader, type RunningProcess } from '../support/processes.js';
import { streamDeclaredPacket } from './raw-mqtt.js';

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

async function startCoordinator(env: Record<string, string> = {}): Promise<{ proc: RunningProcess; port: number; dataDir: string; admin: { url: string; token: string }; done: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fleet-measure-'));
  const port = await freePort();
  const proc = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, '--mqtt-port', String(port), '--http-port', '0', '--log-level', 'error'], { env });
  await proc.waitForLine(/fleet coordinator .* MQTT/, 60_000);
  const admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string };
  return {
    proc,
    port,
    dataDir,
    admin,
    done: async () => {
      await proc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function provision(admin: { url: string; token: string }, ids: string[], model = 'rpi4'): Promise<Map<string, string>> {
  const res = await fetch(`${admin.url}/v1/devices/provision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ deviceIds: ids, hardwareModel: model }),
  });
  const body = (await res.json()) as { devices: { deviceId: string; secret: string }[] };
  return new Map(body.devices.map((d) => [d.deviceId, d.secret]));
}

async function preauth(): Promise<void> {
  const c = await startCoordinator();
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const before = rssMb(c.proc.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(c.proc.pid))), 100);
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => streamDeclaredPacket(c.port, 1, 200_000_000, 15_000, `127.0.0.${10 + i}`)));
    const ms = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    clearInterval(sampler);
    peak = Math.max(peak, rssMb(c.proc.pid));
    console.log(JSON.stringify({
      measure: 'preauth-200MB-x5',
      rssBeforeMb: before,
      rssPeakMb: peak,
      rssAfterMb: rssMb(c.proc.pid),
      bytesSentMb: Math.round(results.reduce((s, r) => s + r.written, 0) / 1e6),
      closedByBroker: results.filter((r) => r.closedByBroker).length,
      ms,
    }));
  } finally {
    await c.done();
  }
}

async function authstorm(): Promise<void> {
  const c = await startCoordinator();
  try {
    const ids = ['victim-1', 'legit-1', 'legit-2', 'legit-3', 'legit-4', 'warm-1', 'warm-2', 'warm-3'];
    const secrets = await provision(c.admin, ids);
    // First connects without an attack (the first warms up this process's client).
    const baseline: number[] = [];
    for (const id of ['warm-1', 'warm-2', 'warm-3']) {
      const t0 = performance.now();
      const cl = await mqtt.connectAsync(`mqtt://127.0.0.1:${c.port}`, { clientId: id, username: id, password: secrets.get(id)!, reconnectPeriod: 0 });
      baseline.push(Math.round(performance.now() - t0));
      await cl.endAsync(true);
    }
    // 64 loops of wrong passwords for a provisioned device, from other source addresses, in another process.
    const storm = spawnProcess(process.execPath, ['--import', tsLoader, join(repoRoot, 'test/hostile/auth-storm-child.ts'), String(c.port), 'victim-1', '64', '2', '4']);
    await storm.waitForLine(/"attempts"/, 30_000);
    await new Promise((r) => setTimeout(r, 3000));
    const underAttack: number[] = [];
    for (const id of ['legit-1', 'legit-2', 'legit-3', 'legit-4']) {
      const t0 = performance.now();
      const cl = await mqtt.connectAsync(`mqtt://127.0.0.1:${c.port}`, { clientId: id, username: id, password: secrets.get(id)!, reconnectPeriod: 0, connectTimeout: 60_000 });
      underAttack.push(Math.round(performance.now() - t0));
      await cl.endAsync(true);
      await new Promise((r) => setTimeout(r, 500));
    }
    await storm.stop();
    const last = JSON.parse(storm.lines.filter((l) => l.startsWith('{')).at(-1)!) as { attempts: number; outcomes: Record<string, number> };
    const attempts = last.attempts;
    const outcomes = last.outcomes;
    console.log(JSON.stringify({ measure: 'first-connect-under-64-wrong-password-loops', baselineMs: baseline, underAttackMs: underAttack, attackerAttempts: attempts, attackerOutcomes: outcomes }));
  } finally {
    await c.done();
  }
}

const which = process.argv[2];
if (which === 'preauth') await preauth();
else if (which === 'authstorm') await authstorm();
else {
  console.error('usage: measure.ts preauth|authstorm');
  process.exit(2);
}
