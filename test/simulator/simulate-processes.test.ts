/**
 * `fleet simulate --processes 2`: the built-in coordinator in the CLI's process, the devices in two
 * child processes (each binding its sockets to its own loopback source address) that follow the CLI's
 * paced clock. A healthy release then a boot-looping one, run both ways — devices in the simulator's
 * own process and in two children — must get the same verdicts: the first completes, the second is
 * caught and rolled back, no device bricked by the system.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnFleet } from '../support/processes.js';
import type { SimulationReport } from '../../simulator/report.js';

let dir = '';

async function simulate(name: string, extra: string[]): Promise<{ code: number | null; out: string; report: SimulationReport | null }> {
  const reportFile = join(dir, `${name}.json`);
  const p = spawnFleet(['simulate', '--scenario', join(dir, 'scenario.json'), '--report', reportFile, '--quiet', ...extra]);
  const timer = setTimeout(() => void p.stop('SIGKILL'), 170_000);
  const exit = await p.exited;
  clearTimeout(timer);
  let report: SimulationReport | null = null;
  try {
    report = JSON.parse(readFileSync(reportFile, 'utf8')) as SimulationReport;
  } catch {
    // no report: the assertions below print the output
  }
  return { code: exit.code, out: p.output(), report };
}

const verdicts = (r: SimulationReport | null) =>
  r?.releases.map((x) => ({ version: x.version, outcome: x.outcome, ok: x.ok, bricked: x.bricked.bySystem })) ?? null;

describe('fleet simulate --processes', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-sim-processes-'));
    writeFileSync(
      join(dir, 'scenario.json'),
      JSON.stringify({
        name: 'two-processes',
        description: 'a healthy release to 100%, then a boot-looping one caught in its first wave',
        seed: 21,
        fleet: { devices: 80 },
        rollout: { waves: [25, 100], soak: '10m', telemetryInterval: '2m' },
        releases: [
          { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' },
          { version: '1.2.0', behaviour: { kind: 'boot-loop', share: 1 }, expect: 'abort' },
        ],
      }),
    );
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the devices in two child processes with the verdicts of an in-process run', async () => {
    const [inProcess, children] = await Promise.all([
      simulate('in-process', []),
      simulate('children', ['--processes', '2', '--source-addresses', '127.0.0.2,127.0.0.3']),
    ]);
    expect(children.code, children.out).toBe(0);
    expect(inProcess.code, inProcess.out).toBe(0);
    expect(children.report?.deviceProcesses).toBe(2);
    expect(inProcess.report?.deviceProcesses).toBe(0);
    expect(children.out).toContain('devices in 2 processes');
    expect(verdicts(children.report)).toEqual([
      { version: '1.1.0', outcome: 'completed', ok: true, bricked: 0 },
      { version: '1.2.0', outcome: 'rolled-back', ok: true, bricked: 0 },
    ]);
    expect(verdicts(children.report)).toEqual(verdicts(inProcess.report));
    // Every device of the children's run reached the healthy release and came back from the bad one.
    const [good, bad] = children.report!.releases;
    expect(good!.reach).toMatchObject({ onVersion: 80, online: 80 });
    expect(bad!.exposure).toBeGreaterThan(0);
    expect(bad!.notBack).toEqual([]);
  }, 180_000);
});
