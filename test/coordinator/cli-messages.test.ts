/**
 * The operator CLI's messages for the mistakes a newcomer makes, and the conveniences of the first
 * hour: each command is the real `fleet` executable in its own process (spawnFleet), against a real
 * coordinator on 127.0.0.1 where it needs one. Errors are one line that names what to fix; actions
 * record their --reason; secrets written to a file are not printed; an offline manifest whose URL serves
 * nothing is refused, and a key added to the trust directory counts without a restart.
 */
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { freePort, spawnFleet } from '../support/processes.js';
import { knownDevices, sayHello, startCoordinator, tempDir, uniqueId } from './helpers.js';

interface Run {
  code: number | null;
  out: string;
}

/** Runs `fleet args…` to completion; `out` is stdout and stderr as they came. */
async function fleet(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  const p = spawnFleet(args, options);
  const exit = await p.exited;
  return { code: exit.code, out: p.output() };
}

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

function scratch(): string {
  const { dir, cleanup } = tempDir('fleet-cli-msg-');
  stops.push(cleanup);
  return dir;
}

async function coordinator(): Promise<{ c: Coordinator; dir: string; dd: string[] }> {
  const dir = scratch();
  const c = await startCoordinator(join(dir, 'data'));
  stops.push(() => c.stop());
  return { c, dir, dd: ['--data-dir', c.config.dataDir] };
}

/** A provisioned device that has said hello over MQTT (a ghost would never count). */
async function hello(c: Coordinator, deviceId: string, firmwareVersion = '1.0.0'): Promise<void> {
  await knownDevices(c, [deviceId], 'rpi4', { firmwareVersion });
}

/** Exactly one line of output, an `error [code]:` line, and no stack frame. */
function expectOneErrorLine(run: Run, pattern: RegExp): void {
  expect(run.code, run.out).toBe(2);
  expect(run.out.split('\n').filter(Boolean), run.out).toHaveLength(1);
  expect(run.out).toMatch(pattern);
  expect(run.out).not.toMatch(/^\s+at /m);
}

describe('fleet CLI: errors are one line that says what to fix', () => {
  it('a snapshot file that does not exist, an admin URL without a scheme, no coordinator here', { timeout: 60_000 }, async () => {
    const dir = scratch();
    expectOneErrorLine(await fleet(['canary', 'judge', '--input', 'nope.json'], { cwd: dir }), /^error \[ENOENT\]: cannot read nope\.json: no such file or directory/);
    expectOneErrorLine(await fleet(['devices', 'list', '--url', 'localhost:8080']), /--url "localhost:8080" is not an http:\/\/ or https:\/\/ URL of a coordinator: use http:\/\/localhost:8080/);
    // Run from a directory without a coordinator: the message names the file it looked for.
    const none = await fleet(['devices', 'list'], { cwd: dir });
    expectOneErrorLine(none, /^error \[no-coordinator\]: no coordinator found at .*\/\.fleet\/admin\.json \(default data dir \.fleet\)/);
    expect(none.out).toContain(join(dir, '.fleet', 'admin.json'));
    expect(none.out).toMatch(/--data-dir <its data dir> \(FLEET_DATA_DIR\)/);
  });

  it('a refused token names where it came from: the flag or the variable', { timeout: 60_000 }, async () => {
    const { c } = await coordinator();
    const flag = await fleet(['devices', 'list', '--url', c.httpUrl, '--token', 'not-the-token-0123456789']);
    expectOneErrorLine(flag, /refused the operator token from --token/);
    expect(flag.out).not.toMatch(/FLEET_TOKEN against/);
    const env = await fleet(['devices', 'list'], { env: { FLEET_URL: c.httpUrl, FLEET_TOKEN: 'not-the-token-0123456789' } });
    expectOneErrorLine(env, /refused the operator token from FLEET_TOKEN/);
  });
});

describe('fleet CLI: deployments', () => {
  it('refuses waves that stop short of 100 % before it needs a coordinator', { timeout: 30_000 }, async () => {
    const run = await fleet(['deploy', 'create', '--firmware', '1.1.0', '--waves', '1,5,25'], { cwd: scratch() });
    expectOneErrorLine(run, /--waves 1,5,25 stops at 25 %: the last wave must be 100/);
  });

  it('explains a --from that excludes every known device, and records --reason of every action', { timeout: 90_000 }, async () => {
    const { c, dir, dd } = await coordinator();
    const id = uniqueId('cli');
    await hello(c, id);
    const img = join(dir, 'fw.img');
    writeFileSync(img, Buffer.alloc(10_000, 7));
    expect((await fleet(['firmware', 'upload', img, '--version', '1.1.0', '--hardware', 'rpi4', ...dd])).code).toBe(0);
    const excluded = await fleet(['deploy', 'create', '--firmware', '1.1.0', '--from', '>=2.0.0', ...dd]);
    expectOneErrorLine(excluded, /no known device matches the target \(models rpi4, versions >=2\.0\.0\): of the 1 known, 1 runs a version outside >=2\.0\.0 \(--from\)/);
    expect(excluded.out).not.toMatch(/provision/);

    const created = await fleet(['deploy', 'create', '--firmware', '1.1.0', '--waves', '100', '--approve', '1', '--id', 'dep-reason', ...dd]);
    expect(created.code, created.out).toBe(0);
    expect(created.out).toMatch(/warning: a single 100 % wave has no canary/);
    for (const [action, reason] of [['pause', 'hold on'], ['resume', 'go on'], ['approve', 'looks fine']] as const) {
      const run = await fleet(['deploy', action, 'dep-reason', '--reason', reason, ...dd]);
      expect(run.code, run.out).toBe(0);
    }
    const entries = await c.auditEntries({ limit: 100, subject: 'dep-reason' });
    const reasons = Object.fromEntries(entries.map((e) => [e.action, (e.detail as { reason?: unknown }).reason]));
    expect(reasons).toMatchObject({ 'deployment.paused': 'hold on', 'deployment.resumed': 'go on', 'deployment.wave-approved': 'looks fine' });
  });
});

describe('fleet CLI: devices and flags', () => {
  it('provision --out writes the secrets to the file only', { timeout: 60_000 }, async () => {
    const { c, dir, dd } = await coordinator();
    const out = join(dir, 'secrets.json');
    const run = await fleet(['devices', 'provision', 'pi-secret-1', '--model', 'rpi4', '--out', out, '--reason', 'lab bench', ...dd]);
    expect(run.code, run.out).toBe(0);
    const secret = (JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>)['pi-secret-1']!;
    // The secret in the file is the device's: its agent connects with it and says hello.
    await sayHello(c, [{ deviceId: 'pi-secret-1', secret }]);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(run.out).not.toContain(secret);
    expect(run.out).toContain(`secrets written to ${out}`);
    const audit = (await c.auditEntries({ limit: 20 })).find((e) => e.action === 'devices.provisioned');
    expect(audit?.detail).toMatchObject({ reason: 'lab bench' });
  });

  it('lists a default-off flag as off (default), and kill takes --reason', { timeout: 60_000 }, async () => {
    const { c, dd } = await coordinator();
    const list = await fleet(['flags', 'list', ...dd]);
    expect(list.out).toMatch(/canary\.ai\s+│\s+coordinator\s+│\s+off \(default\)/);
    expect(list.out).not.toMatch(/killed/);
    const kill = await fleet(['flags', 'kill', 'canary.ai', '--reason', 'model outage', ...dd]);
    expect(kill.code, kill.out).toBe(0);
    expect(kill.out).toMatch(/canary\.ai \[coordinator\] OFF \(killed\)/);
    expect((await c.auditEntries({ limit: 20 })).find((e) => e.action === 'flag.kill')?.detail).toMatchObject({ reason: 'model outage' });
  });
});

describe('fleet CLI: offline-signed manifests', () => {
  it('refuses a manifest URL that serves nothing, and sees a key added to the trust directory without a restart', { timeout: 90_000 }, async () => {
    const { c, dir, dd } = await coordinator();
    const img = join(dir, 'app.img');
    writeFileSync(img, Buffer.alloc(20_000, 5));
    expect((await fleet(['firmware', 'keygen', '--out', join(dir, 'keys'), '--name', 'release'])).code).toBe(0);
    const key = join(dir, 'keys', 'release.key');
    const sign = (url: string, out: string): Promise<Run> => fleet(['firmware', 'sign', img, '--version', '1.5.0', '--hardware', 'rpi4', '--key', key, '--url', url, '--out', out]);

    // Nothing listens on this port: the upload is refused with the URL to sign with instead.
    const closed = `http://127.0.0.1:${await freePort()}/app.img`;
    expect((await sign(closed, join(dir, 'closed.json'))).code).toBe(0);
    const refused = await fleet(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', '--manifest', join(dir, 'closed.json'), ...dd]);
    expectOneErrorLine(refused, /its artifact URL http:\/\/127\.0\.0\.1:\d+\/app\.img is not served by this coordinator and it did not answer \(ECONNREFUSED\)/);
    expect(refused.out).toContain(`sign it with --url ${c.httpUrl}/artifacts/{sha256}`);

    // A server that answers with another size is refused too.
    const server: Server = createServer((_req, res) => res.writeHead(200, { 'content-length': '5' }).end('short'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const short = `http://127.0.0.1:${(server.address() as { port: number }).port}/app.img`;
    expect((await sign(short, join(dir, 'short.json'))).code).toBe(0);
    const wrongSize = await fleet(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', '--manifest', join(dir, 'short.json'), ...dd]);
    expectOneErrorLine(wrongSize, /it serves 5 bytes, the manifest says 20000/);

    // Signed for this coordinator's own artifact URL: the signer's key is not trusted yet.
    expect((await sign(`${c.httpUrl}/artifacts/{sha256}`, join(dir, 'own.json'))).code).toBe(0);
    const untrusted = await fleet(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', '--manifest', join(dir, 'own.json'), ...dd]);
    expectOneErrorLine(untrusted, new RegExp(`copy the signer's public key \\(\\*\\.pub\\) into ${c.trustDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} and upload again \\(it is read at each upload, no restart needed\\)`));
    copyFileSync(join(dir, 'keys', 'release.pub'), join(c.trustDir, 'release.pub'));
    const accepted = await fleet(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', '--manifest', join(dir, 'own.json'), ...dd]);
    expect(accepted.code, accepted.out).toBe(0);
    expect(accepted.out).toMatch(/offline-signed manifest accepted/);
  });
});

describe('fleet coordinator start: logs', () => {
  it('names each log line\'s module once, and puts the banner where the CLI finds the data dir', { timeout: 60_000 }, async () => {
    const dir = scratch();
    const p = spawnFleet(['coordinator', 'start', '--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0', '--log-format', 'json'], { env: { APP_ENV: 'development' } });
    stops.push(async () => void (await p.stop()));
    await p.waitForLine(/"msg":"coordinator started"/, 30_000);
    await p.waitForLine(/FLEET_DATA_DIR=/, 10_000);
    const json = p.lines.filter((l) => l.startsWith('{'));
    expect(json.some((l) => l.includes('"module":"broker"'))).toBe(true);
    for (const line of json) expect(line.match(/"module":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
    expect(p.output()).toContain(`export FLEET_DATA_DIR=${join(dir, 'data')}`);
    expect((await p.stop()).code).toBe(0);
  });
});
