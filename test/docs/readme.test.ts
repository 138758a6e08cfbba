/**
 * The README as a test: every fenced block whose info string is `sh runnable` runs, in order, in one
 * bash session (`set -euo pipefail`) in an empty temporary directory — the hands-on walk-through
 * starts a coordinator and a real agent, uploads, deploys, watches and rolls back, then stops both and
 * removes its files. So the README cannot drift from the code: a renamed flag or a changed message
 * fails here.
 *
 * `fleet` on the session's PATH runs the CLI from the TypeScript sources through the test loader, as
 * spawnFleet does, so the test never runs a stale build (and needs none). The coordinator binds free
 * ports (FLEET_MQTT_PORT/FLEET_HTTP_PORT=0) instead of 1883/8080, and the plain-broker block's
 * Mosquitto and web server the free MQTT_PORT/HTTP_PORT, since other tests or a local broker may hold
 * the defaults; everything else runs exactly as written.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fleetEntry, freePort, repoRoot, spawnProcess, tsLoader, type RunningProcess } from '../support/processes.js';

/** The bodies of the README's runnable shell blocks, in order. */
export function runnableBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh runnable\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** True while any process of the group led by `pid` is alive. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('README', () => {
  it('marks its hands-on shell blocks runnable', () => {
    const blocks = runnableBlocks(readFileSync(join(repoRoot, 'README.md'), 'utf8'));
    expect(blocks.length).toBeGreaterThanOrEqual(7);
    expect(blocks.join('\n')).toMatch(/fleet coordinator start/);
    expect(blocks.join('\n')).toMatch(/fleet agent dev/);
  });

  it('runs every runnable block as written, and the walk-through cleans up after itself', { timeout: 240_000 }, async () => {
    const blocks = runnableBlocks(readFileSync(join(repoRoot, 'README.md'), 'utf8'));
    const work = mkdtempSync(join(tmpdir(), 'fleet-readme-'));
    const bin = mkdtempSync(join(tmpdir(), 'fleet-readme-bin-'));
    const started: { shell?: RunningProcess } = {};
    cleanups.push(() => {
      // Whatever the blocks left running (a failed step skips their own cleanup).
      if (started.shell && groupAlive(started.shell.pid)) process.kill(-started.shell.pid, 'SIGKILL');
      rmSync(work, { recursive: true, force: true });
      rmSync(bin, { recursive: true, force: true });
    });
    writeFileSync(join(bin, 'fleet'), `#!/bin/sh\nexec "${process.execPath}" --import "${tsLoader}" "${fleetEntry}" "$@"\n`);
    chmodSync(join(bin, 'fleet'), 0o755);
    const script = ['set -euo pipefail', ...blocks.map((b, i) => `echo "--- README block ${i + 1}"\n${b}`)].join('\n');

    const shell = spawnProcess('bash', ['-c', script], {
      cwd: work,
      detached: true,
      env: {
        PATH: `${bin}:${process.env['PATH'] ?? ''}:/usr/sbin`,
        HOME: process.env['HOME'] ?? work,
        FLEET_MQTT_PORT: '0',
        FLEET_HTTP_PORT: '0',
        // The plain-broker block's Mosquitto and web server take fixed ports: free ones here.
        MQTT_PORT: String(await freePort()),
        HTTP_PORT: String(await freePort()),
      },
    });
    started.shell = shell;
    const exit = await Promise.race([
      shell.exited,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 200_000)),
    ]);
    const output = shell.output();
    expect(exit, `the README blocks did not finish within 200 s; output:\n${output.slice(-6000)}`).toBeDefined();
    expect(exit!.code, `a README block failed; output:\n${output.slice(-6000)}`).toBe(0);

    // What the walk-through says happens, happened.
    expect(output).toMatch(/^OK: 1\.5\.0 for rpi4 signed by 1 trusted key/m);
    expect(output).toMatch(/^pi-001 online: rpi4 1\.0\.0 on slot A$/m);
    expect(output).toMatch(/^uploaded 1\.1\.0 for rpi4: 1\.0 MiB/m);
    expect(output).toMatch(/phase completed/);
    expect(output).toMatch(/tour-1: committed \(1\.1\.0\)/);
    expect(output).toMatch(/rollback: 1\/1 back on the old version/);
    expect(output).toMatch(/tour-1: rolled-back 1\.1\.0 -> 1\.0\.0/);
    expect(output).toMatch(/dep-1: committed 1\.0\.0 -> 1\.1\.0/);
    expect(output).toMatch(/dep-1: rolled-back 1\.1\.0 -> 1\.0\.0 \(rollback-command\)/);
    // It stopped what it started and removed what it created.
    expect(groupAlive(shell.pid)).toBe(false);
    expect(readdirSync(work)).toEqual([]);
  });
});
