/**
 * The operator CLI (`cli/fleet.ts`, run as a child process) against a real coordinator:
 * it finds the coordinator through the data-dir file, prints tables and `--json`, and its errors say
 * what to do. Also `fleet coordinator start` itself.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { sayHello, startCoordinator, tempDir, uniqueId, waitFor } from './helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const loader = fileURLToPath(new URL('../support/register-ts.js', import.meta.url));
const fleetTs = join(root, 'cli/fleet.ts');

function fleet(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', loader, fleetTs, ...args],
      { cwd: root, env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function coordinator(): Promise<{ c: Coordinator; dir: string }> {
  const { dir, cleanup } = tempDir();
  stops.push(cleanup);
  const c = await startCoordinator(join(dir, 'data'));
  stops.push(() => c.stop());
  return { c, dir };
}

describe('fleet CLI', () => {
  it('provisions and lists devices, uploads firmware and drives a deployment', { timeout: 90_000 }, async () => {
    const { c, dir } = await coordinator();
    const dd = ['--data-dir', c.config.dataDir];
    const id = uniqueId('cli');
    const prov = await fleet(['devices', 'provision', id, '--model', 'rpi4', '--json', ...dd]);
    expect(prov.code).toBe(0);
    const secret = (JSON.parse(prov.stdout) as { devices: { deviceId: string; secret: string }[] }).devices[0]!;
    expect(secret.deviceId).toBe(id);

    const table = await fleet(['devices', 'list', ...dd]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(id);
    expect(table.stdout).toMatch(/1 device\(s\), 0 online/);
    const list = JSON.parse((await fleet(['devices', 'list', '--json', ...dd])).stdout) as { total: number };
    expect(list.total).toBe(1);

    const img = join(dir, 'fw.img');
    writeFileSync(img, Buffer.alloc(10_000, 3));
    const up = await fleet(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', ...dd]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/uploaded 1\.5\.0 for rpi4/);
    const fw = JSON.parse((await fleet(['firmware', 'list', '--json', ...dd])).stdout) as { firmware: { firmwareVersion: string; size: number }[] };
    expect(fw.firmware).toMatchObject([{ firmwareVersion: '1.5.0', size: 10_000 }]);

    // A deployment needs a known device: one that said hello.
    const refused = await fleet(['deploy', 'create', '--firmware', '1.5.0', ...dd]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no-eligible-devices/);
    // The secret the CLI printed is the device's: its agent connects with it and says hello.
    await sayHello(c, [{ deviceId: id, secret: secret.secret }]);
    // The first wave needs approval, so the deployment waits.
    const created = await fleet(['deploy', 'create', '--firmware', '1.5.0', '--waves', '50,100', '--soak', '10m', '--approve', '1', '--json', ...dd]);
    expect(created.code).toBe(0);
    const dep = JSON.parse(created.stdout) as { id: string; target: { hardwareModels: string[] }; waves: { percent: number; soakMs: number }[]; warnings?: string[] };
    expect(dep.target.hardwareModels).toEqual(['rpi4']); // defaulted from the firmware's hardware
    expect(dep.warnings).toEqual([expect.stringMatching(/^wave 1 \(50 %\) covers (none|1) of the 1 known devices? in the target/)]);
    expect(dep.waves.map((w) => [w.percent, w.soakMs])).toEqual([[50, 600_000], [100, 600_000]]);

    const status = await fleet(['deploy', 'status', dep.id, ...dd]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`deployment ${dep.id}`);
    expect(status.stdout).toMatch(/waiting for approval/);
    const paused = await fleet(['deploy', 'pause', dep.id, '--reason', 'cli test', '--json', ...dd]);
    expect((JSON.parse(paused.stdout) as { paused: boolean }).paused).toBe(true);
    const twice = await fleet(['deploy', 'pause', dep.id, ...dd]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/already paused/);
    const deps = JSON.parse((await fleet(['deploy', 'list', '--json', ...dd])).stdout) as { deployments: { id: string }[] };
    expect(deps.deployments.map((d) => d.id)).toEqual([dep.id]);
    const aborted = await fleet(['deploy', 'abort', dep.id, '--reason', 'done', ...dd]);
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toMatch(/phase (aborted|rolling-back|rolled-back)/);
    // --watch (not a TTY here: plain redraws) returns once the deployment has settled.
    const watched = await fleet(['deploy', 'status', dep.id, '--watch', '--interval', '100ms', ...dd]);
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(/phase (aborted|rolled-back)/);
  });

  it('says how to fix a missing coordinator, a wrong token and an unknown deployment', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const none = await fleet(['devices', 'list', '--data-dir', join(dir, 'nothing')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/fleet coordinator start/);
    const { c } = await coordinator();
    const wrong = await fleet(['devices', 'list', '--url', c.httpUrl, '--token', 'not-the-token']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/refused the operator token from --token/);
    const env = await fleet(['deploy', 'status', 'nope'], { FLEET_URL: c.httpUrl, FLEET_TOKEN: c.adminToken });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/fleet deploy list/);
  });

  it('`fleet coordinator start` runs until SIGTERM and writes the admin file the CLI reads', { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const dataDir = join(dir, 'svc');
    const child = spawn(process.execPath, ['--import', loader, fleetTs, 'coordinator', 'start', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', '--log-level', 'warn'], {
      cwd: root,
      env: { PATH: process.env['PATH'] ?? '', APP_ENV: 'development' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    stops.push(() => {
      child.kill('SIGKILL');
    });
    await waitFor(() => existsSync(join(dataDir, 'admin.json')) && stderr.includes('admin API'), 'coordinator started', 30_000, 50);
    const file = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string };
    expect(file.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const list = await fleet(['devices', 'list', '--json', '--data-dir', dataDir]);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { total: number }).total).toBe(0);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
