/**
 * Per-deployment judge settings and the soak plan through the operator CLI (a child process) against a
 * real coordinator: `fleet deploy create --detect 2x --warm-up 10m` stores the settings, warns about
 * a canary wave that cannot roll the planned regression back, and refuses settings out of bounds.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { spawnFleet } from '../support/processes.js';
import { knownDevices, startCoordinator, tempDir, uniqueId } from '../coordinator/helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function run(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawnFleet(args);
  const exit = await p.exited;
  return { code: exit.code, out: p.output() };
}

describe('deploy create with judge settings', () => {
  it('stores them, warns about waves below the planned power, and refuses unsafe ones', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c: Coordinator = await startCoordinator(join(dir, 'data'));
    stops.push(() => c.stop());
    const dd = ['--data-dir', c.config.dataDir];
    // 300 known devices (provisioned, said hello); the first wave (5 %) holds about 15 of them.
    const ids = Array.from({ length: 300 }, (_, i) => uniqueId(`plan-${i}`));
    await knownDevices(c, ids);
    const img = join(dir, 'fw.img');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(img, Buffer.alloc(10_000, 7));
    expect((await run(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', ...dd])).code).toBe(0);

    const created = await run(['deploy', 'create', '--firmware', '1.5.0', '--waves', '5,100', '--soak', '30m', '--detect', '2x', '--baseline', '0.24', '--warm-up', '10m', '--draft', ...dd]);
    expect(created.code, created.out).toBe(0);
    expect(created.out).toMatch(/warning: wave 1 \(\d+ canary devices, 0.5 h soak\) would roll back a ×2 regression of 0.24\/device-day with only \d+ % probability \(planned 80 %\): it needs a soak of/);
    expect((await c.deployments(10))[0]!.judge).toEqual({ warmUpMs: 600_000, plan: { ratio: 2, baselinePerDeviceDay: 0.24, power: 0.8 } });

    const unsafe = await run(['deploy', 'create', '--firmware', '1.5.0', '--min-expected-events', '500', '--draft', ...dd]);
    expect(unsafe.code).not.toBe(0);
    expect(unsafe.out).toMatch(/judge\.minExpectedEvents/);
  });
});
