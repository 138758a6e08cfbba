/**
 * `fleet simulate` against a running coordinator (a child process) behind an authenticated external
 * broker (Mosquitto): the run keeps real time, uses the devices and secrets an operator provisioned
 * (the broker knows those passwords; rotating them would lock the devices out), waits for the fleet
 * to be online, and targets its deployments at its own devices. A time scale there is refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasMosquitto, Mosquitto } from '../support/mosquitto.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import type { SimulationReport } from '../../simulator/report.js';

const TOKEN = 'remote-simulate-operator-token';
const BROKER_USER = 'fleet-coordinator';
const BROKER_PASSWORD = 'coordinator-password-1';

let dir = '';
let broker: Mosquitto;
let coordinator: RunningProcess;
let adminUrl = '';
let secretsFile = '';

/** Runs the CLI to the end; its exit and output. */
async function fleet(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; out: string }> {
  const p = spawnFleet(args);
  const timer = setTimeout(() => void p.stop('SIGKILL'), timeoutMs);
  const exit = await p.exited;
  clearTimeout(timer);
  return { code: exit.code, out: p.output() };
}

const remote = (): string[] => ['--broker', broker.url, '--url', adminUrl, '--token', TOKEN, '--trust', join(dir, 'data', 'trust')];

function scenarioFile(): string {
  const file = join(dir, 'remote-real-time.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'remote-real-time',
      description: 'a healthy release, then one that boot-loops, in real time',
      seed: 11,
      // One 100% wave: no control cohort, so the hard limits decide, which a dozen devices can feed.
      rollout: { waves: [100], soak: '2s', telemetryInterval: '1s', deadline: '3m', rollbackDeadline: '1m' },
      releases: [
        { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' },
        { version: '1.2.0', behaviour: { kind: 'boot-loop', share: 1 }, expect: 'abort' },
      ],
    }),
  );
  return file;
}

describe.skipIf(!hasMosquitto)('fleet simulate against a running coordinator', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-remote-sim-'));
    broker = await Mosquitto.start({ users: { [BROKER_USER]: BROKER_PASSWORD } });
    coordinator = spawnFleet(['coordinator', 'start', '--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0', '--broker', broker.url, '--log-level', 'warn'], {
      env: { FLEET_ADMIN_TOKEN: TOKEN, FLEET_BROKER_USERNAME: BROKER_USER, FLEET_BROKER_PASSWORD: BROKER_PASSWORD },
    });
    const line = await coordinator.waitForLine(/admin API http:\/\/\S+/, 30_000);
    adminUrl = /admin API (http:\/\/[^,\s]+)/.exec(line)![1]!;
    // The operator provisions the devices and gives their passwords to the broker.
    secretsFile = join(dir, 'secrets.json');
    const ids = Array.from({ length: 12 }, (_, i) => `field-${String(i).padStart(2, '0')}`);
    const provisioned = await fleet(['devices', 'provision', ...ids, '--model', 'rpi4', '--out', secretsFile, '--url', adminUrl, '--token', TOKEN]);
    expect(provisioned.code, provisioned.out).toBe(0);
    const secrets = JSON.parse(readFileSync(secretsFile, 'utf8')) as Record<string, string>;
    for (const [id, secret] of Object.entries(secrets)) execFileSync('mosquitto_passwd', ['-b', join(broker.dir, 'passwords'), id, secret]);
    await broker.restart();
  }, 90_000);

  afterAll(async () => {
    await coordinator?.stop();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs in real time on the provided secrets, waits for the fleet and gets every verdict right', { timeout: 240_000 }, async () => {
    const reportFile = join(dir, 'report.json');
    const run = await fleet(['simulate', '--scenario', scenarioFile(), ...remote(), '--secrets', secretsFile, '--min-online', '1', '--report', reportFile], 200_000);
    expect(run.code, run.out).toBe(0);
    expect(run.out).toMatch(/keeps real time, so this run does too/);
    expect(run.out).toMatch(/12 devices online/);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as SimulationReport;
    expect(report.devices).toBe(12);
    expect(report.timeScale).toBe(1);
    expect(report.clock.paced).toBe(false);
    expect(report.releases.map((r) => [r.version, r.outcome, r.ok])).toEqual([
      ['1.1.0', 'completed', true],
      ['1.2.0', 'rolled-back', true],
    ]);
    expect(report.releases[0]!.reach).toMatchObject({ online: 12, onVersion: 12 });
    expect(report.releases[1]!.notBack).toEqual([]);
    // Nothing was provisioned or rotated behind the operator's back: the registry holds their 12.
    const devices = await fetch(`${adminUrl}/v1/devices`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.json() as Promise<{ total: number }>);
    expect(devices.total).toBe(12);
  });

  it('refuses a time scale with one clear line', async () => {
    const run = await fleet(['simulate', '--scenario', scenarioFile(), ...remote(), '--secrets', secretsFile, '--time-scale', '300']);
    expect(run.code).toBe(2);
    expect(run.out.trim().split('\n')).toHaveLength(1);
    expect(run.out).toMatch(/^error \[time-scale\]: --time-scale 300 cannot run against a running coordinator/);
  });

  it('refuses a broker list that is not MQTT URLs with one clear line', async () => {
    const run = await fleet(['simulate', '--scenario', scenarioFile(), '--broker', `${broker.url},http://127.0.0.1:1`, '--url', adminUrl, '--token', TOKEN]);
    expect(run.code).toBe(2);
    expect(run.out.trim().split('\n')).toHaveLength(1);
    expect(run.out).toMatch(/--broker.*mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URLs separated by commas/);
  });

  it('stops before any rollout when too little of the fleet comes online', { timeout: 60_000 }, async () => {
    const count = async (): Promise<number> => {
      const res = await fetch(`${adminUrl}/v1/deployments`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const r: unknown = await res.json();
      return (Array.isArray(r) ? r : (r as { deployments: unknown[] }).deployments).length;
    };
    const before = await count();
    const wrong = join(dir, 'wrong-secrets.json');
    writeFileSync(wrong, JSON.stringify({ 'field-00': 'not-its-password', 'field-01': 'not-its-password' }));
    const run = await fleet(['simulate', '--scenario', scenarioFile(), ...remote(), '--secrets', wrong, '--online-timeout', '5s'], 50_000);
    expect(run.code, run.out).toBe(2);
    expect(run.out).toMatch(/error \[fleet-not-online\]: only 0 of 2 simulated devices came online within 5 s/);
    expect(await count()).toBe(before);
  });
});
