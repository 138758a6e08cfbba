import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listScenarios, loadScenario, parseScenario, ScenarioError } from '../../simulator/scenario.js';

describe('scenario library', () => {
  it('ships every behaviour and fault scenario, and each one validates', async () => {
    const names = await listScenarios();
    for (const wanted of [
      'good-release', 'battery-drain', 'cpu-regression', 'memory-regression', 'crash-rate', 'boot-loop',
      'brick', 'subtle', 'noisy-but-fine', 'flaky-network', 'offline-returning', 'coordinator-restart', 'demo',
      'power-loss',
    ]) expect(names).toContain(wanted);
    for (const name of names) {
      const s = await loadScenario(name);
      expect(s.name).toBe(name);
      expect(s.releases.length).toBeGreaterThan(0);
    }
  });

  it('fills defaults and keeps behaviour parameters', async () => {
    const s = await loadScenario('crash-rate');
    // Its own rollout policy is kept; everything it leaves out takes the defaults.
    expect(s.rollout.waves).toEqual([5, 25, 100]);
    expect(s.rollout.soak).toBe('1h');
    expect(s.rollout.telemetryInterval).toBe('2m');
    expect(s.fleet.devices).toBe(1000);
    expect(s.releases[0]!.behaviour).toEqual({ kind: 'crash-rate', factor: 20 });
    expect(s.releases[0]!.expect).toBe('abort');
    expect((await loadScenario('good-release')).rollout.waves).toEqual([1, 5, 25, 100]);
  });

  it('loads a scenario file by path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-scenario-'));
    const file = join(dir, 'mine.json');
    await writeFile(file, JSON.stringify({ name: 'mine', description: 'x', releases: [{ version: '2.0.0', expect: 'complete' }] }));
    const s = await loadScenario(file);
    expect(s.releases[0]!.behaviour).toEqual({ kind: 'healthy' });
  });

  it('names every bad field and unknown scenarios', async () => {
    expect(() =>
      parseScenario({ name: 'Bad Name', description: 'x', releases: [{ version: 'one', expect: 'maybe' }], faults: { powerLossShare: 2 } }),
    ).toThrow(/name.*releases\.0\.version.*releases\.0\.expect.*faults\.powerLossShare/s);
    expect(() => parseScenario({ name: 'x', description: 'x', releases: [{ version: '1.0.0', expect: 'abort', behaviour: { kind: 'melt' } }] })).toThrow(ScenarioError);
    expect(() => parseScenario({ name: 'x', description: 'x', releases: [{ version: '1.0.0', expect: 'abort' }], rollout: { soak: 'soon' } })).toThrow(/rollout\.soak/);
    await expect(loadScenario('no-such-scenario')).rejects.toThrow(/bundled ones: .*good-release/);
  });
});
