/**
 * One version, from package.json: `fleet --version` (the CLI as a child process), the coordinator's
 * /v1/health and the agentVersion a real agent sends in its hello all report it; and how the lookup
 * walks up to the nearest package.json (the repository, `dist/` beside it, a package of its own).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { packageVersion } from '../../runtime/package-version.js';
import type { Coordinator } from '../../coordinator/index.js';
import { repoRoot, spawnFleet } from '../support/processes.js';
import { api, startCoordinator, tempDir } from './helpers.js';
import { startFleet } from './fleet-harness.js';

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

describe('the version', () => {
  it('is what fleet --version prints', async () => {
    const p = spawnFleet(['--version']);
    expect((await p.exited).code).toBe(0);
    expect(p.lines.filter((l) => l !== '')).toEqual([version]);
  });

  it("is the coordinator's /v1/health version and the agentVersion of a real agent's hello", { timeout: 60_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c: Coordinator = await startCoordinator(join(dir, 'data'));
    stops.push(() => c.stop());
    const health = await api<{ version: string }>(c, 'GET', '/v1/health', undefined, null);
    expect(health.body.version).toBe(version);
    const fleet = await startFleet(c, dir, 1);
    stops.push(() => fleet.stop());
    const device = await api<{ agentVersion: string | null }>(c, 'GET', `/v1/devices/${fleet.devices[0]!.id}`);
    expect(device.body.agentVersion).toBe(version);
  });

  it('comes from the nearest package.json above the module, and says so when there is none to read', () => {
    const { dir, cleanup } = tempDir('fleet-version-');
    stops.push(cleanup);
    const module = (...parts: string[]) => pathToFileURL(join(dir, ...parts, 'module.js')).href;
    mkdirSync(join(dir, 'pkg', 'dist', 'agent'), { recursive: true });
    writeFileSync(join(dir, 'pkg', 'package.json'), JSON.stringify({ name: 'fleet', version: '2.3.4' }));
    expect(packageVersion(module('pkg', 'dist', 'agent'))).toBe('2.3.4');
    expect(packageVersion(module('pkg'))).toBe('2.3.4');
    writeFileSync(join(dir, 'pkg', 'dist', 'package.json'), JSON.stringify({ name: 'fleet-dist' }));
    expect(() => packageVersion(module('pkg', 'dist', 'agent'))).toThrow(/package\.json is invalid: version: .*; reinstall fleet/);
    writeFileSync(join(dir, 'pkg', 'dist', 'package.json'), '{');
    expect(() => packageVersion(module('pkg', 'dist', 'agent'))).toThrow(/not JSON: .*; reinstall fleet/);
    mkdirSync(join(dir, 'loose'));
    expect(() => packageVersion(module('loose'))).toThrow(/no package\.json above .*loose.*; install fleet with its package\.json/);
    expect(packageVersion(import.meta.url)).toBe(version);
  });
});
