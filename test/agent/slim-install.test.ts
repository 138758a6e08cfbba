/**
 * The device install, the way a person does it (README "Install on a device"): the built agent packed
 * by agent/pack.sh, installed with `npm install --omit=dev` into an empty directory, and that install's
 * `fleet-agent` run as a process — its version and help, then as the daemon of a device provisioned
 * on a real coordinator, until the coordinator sees it online and SIGTERM ends it with 0. The install
 * holds the agent's own dependencies and nothing of the coordinator's.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot, spawnFleet, spawnProcess, type RunningProcess } from '../support/processes.js';
import { tempDir } from '../coordinator/helpers.js';

const stops: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

/** Runs a command to completion; fails the test with its output when it does not exit 0. */
async function run(p: RunningProcess, what: string): Promise<string> {
  const exit = await p.exited;
  if (exit.code !== 0) throw new Error(`${what} exited ${exit.code ?? exit.signal}:\n${p.output()}`);
  return p.output();
}

describe('the packed agent', () => {
  it('installs with its own small dependency set and runs against a coordinator', { timeout: 600_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    // tsc -b: up to date (seconds) where the build already ran, as in CI.
    await run(spawnProcess('npm', ['run', 'build'], { env: { HOME: process.env['HOME'] ?? dir } }), 'npm run build');
    await run(spawnProcess('bash', ['agent/pack.sh', dir], { env: { HOME: process.env['HOME'] ?? dir } }), 'agent/pack.sh');
    const version = (JSON.parse(readFileSync(join(repoRoot, 'agent/package.json'), 'utf8')) as { version: string }).version;
    const tarball = join(dir, `fleet-agent-${version}.tgz`);
    expect(existsSync(tarball)).toBe(true);

    const device = join(dir, 'device');
    await run(spawnProcess('mkdir', [device]), 'mkdir');
    await run(
      spawnProcess('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: device, env: { HOME: process.env['HOME'] ?? dir } }),
      'npm install',
    );
    const installed = readdirSync(join(device, 'node_modules'));
    expect(installed).toEqual(expect.arrayContaining(['@fleet', 'mqtt', 'pino', 'zod', 'commander']));
    for (const heavy of ['aedes', 'better-sqlite3', 'openai', 'prom-client', '@stdlib', 'vitest', 'typescript']) expect(installed).not.toContain(heavy);
    expect(readdirSync(join(device, 'node_modules/@fleet/agent/node_modules/@fleet')).sort()).toEqual(['firmware', 'protocol', 'runtime']);
    expect(existsSync(join(device, 'node_modules/@fleet/coordinator'))).toBe(false);

    const bin = join(device, 'node_modules/.bin/fleet-agent');
    expect((await run(spawnProcess(bin, ['--version'], { cwd: device }), 'fleet-agent --version')).trim()).toBe(version);
    expect(await run(spawnProcess(bin, ['--help'], { cwd: device }), 'fleet-agent --help')).toMatch(/start \[options\][\s\S]*validate-config[\s\S]*status/);

    // A device provisioned on a real coordinator; the installed agent runs its config.
    const data = join(dir, 'data');
    const coordinator = spawnFleet(['coordinator', 'start', '--data-dir', data, '--mqtt-port', '0', '--http-port', '0', '--log-format', 'json', '--log-level', 'warn']);
    stops.push(() => coordinator.stop());
    await coordinator.waitForLine(/fleet coordinator \(development\)/, 60_000);
    await run(spawnFleet(['agent', 'dev', 'slim-1', '--config-only', '--dir', join(dir, 'slim-1'), '--data-dir', data]), 'fleet agent dev --config-only');
    const config = join(dir, 'slim-1', 'agent.json');
    expect(await run(spawnProcess(bin, ['validate-config', '-c', config], { cwd: device }), 'fleet-agent validate-config')).toMatch(/is valid: device slim-1/);

    const agent = spawnProcess(bin, ['start', '-c', config], { cwd: device });
    stops.push(() => agent.stop('SIGKILL'));
    await agent.waitForLine(/"msg":"agent started"/, 60_000);
    expect(await run(spawnFleet(['devices', 'wait', 'slim-1', '--data-dir', data]), 'fleet devices wait')).toMatch(/slim-1 online/);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  });
});
