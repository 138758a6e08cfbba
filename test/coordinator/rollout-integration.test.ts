/**
 * End to end with real agents on 127.0.0.1, on SQLite and on PostgreSQL: a 20-device fleet rolled to
 * 100 %, an aborted wave rolled back, a bad image stopped at its first wave.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { bucketOf } from '../../protocol/bucket.js';
import { startCoordinator, tempDir, waitFor } from './helpers.js';
import { fastWaves, startFleet, uploadImage, type Fleet } from './fleet-harness.js';
import { STORE_KINDS, freshPostgresUrl, type StoreKind } from '../support/postgres.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function setup(kind: StoreKind, n: number, options: Parameters<typeof startFleet>[3] = {}): Promise<{ c: Coordinator; fleet: Fleet; dir: string }> {
  const { dir, cleanup } = tempDir();
  stops.push(cleanup);
  const c = await startCoordinator(dir, kind === 'postgres' ? { config: { dataDir: dir, store: await freshPostgresUrl() } } : {});
  stops.push(() => c.stop());
  const fleet = await startFleet(c, dir, n, options);
  stops.push(() => fleet.stop());
  return { c, fleet, dir };
}

const phaseOf = async (c: Coordinator, id: string): Promise<string | undefined> => (await c.deployment(id))?.phase;

describe.each(STORE_KINDS)('rollouts with real agents, %s store', (kind) => {
  it('rolls a 20-device fleet to 100 % through every wave', async () => {
    const { c, fleet } = await setup(kind, 20);
    await uploadImage(c, '1.1.0');
    const d = await c.createDeployment({
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: fastWaves([10, 50, 100]),
      gatePolicy: { minReportingDevices: 1 },
    });
    await waitFor(async () => (await phaseOf(c, d.id)) === 'completed', 'deployment completed', 60_000, 50);
    const view = (await c.deployment(d.id))!;
    expect(view.waves.map((w) => w.status)).toEqual(['passed', 'passed', 'passed']);
    expect(view.waves.reduce((s, w) => s + (w.counts['committed'] ?? 0), 0)).toBe(20);
    // One Proceed per wave: the gate's, or an empty-wave decision where the random bucket offset left a
    // wave (10 % of 20 devices) with no members.
    const decided = view.decisions!.filter((x) => x.source === 'gate' || x.source === 'empty-wave');
    expect(decided.map((x) => [x.wave, x.final.recommendation])).toEqual([[0, 'Proceed'], [1, 'Proceed'], [2, 'Proceed']]);
    for (const x of decided) expect(x.source).toBe(view.waves[x.wave]!.counts['tracked'] === 0 ? 'empty-wave' : 'gate');
    await waitFor(() => c.devices().every((r) => r.firmwareVersion === '1.1.0'), 'registry shows 1.1.0 everywhere', 10_000);
    for (const dev of fleet.devices) expect(dev.dev.bricked).toBe(false);
  });

  it('rolls back every exposed device when the operator aborts after the first wave', async () => {
    const { c } = await setup(kind, 12);
    await uploadImage(c, '1.2.0');
    const d = await c.createDeployment({
      firmwareVersion: '1.2.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [...fastWaves([50], 300), { percent: 100, requiresApproval: true, soakMs: 300, deadlineMs: 30_000, minDevicesReporting: 1 }],
      gatePolicy: { minReportingDevices: 1 },
    });
    // Wave 1 passes its gate, then wave 2 waits for approval: abort there.
    await waitFor(async () => (await c.deployment(d.id))?.waitingFor.includes('approval'), 'second wave waiting for approval', 60_000, 50);
    const exposed = (await c.deployment(d.id))!.waves[0]!.counts.committed;
    expect(exposed).toBeGreaterThan(0);
    await c.act(d.id, { type: 'abort', reason: 'operator test' });
    await waitFor(async () => (await phaseOf(c, d.id)) === 'rolled-back', 'rolled back', 60_000, 50);
    const view = (await c.deployment(d.id))!;
    expect(view.rollback).toMatchObject({ exposed, confirmed: exposed, unreachable: 0 });
    await waitFor(() => c.devices().every((r) => r.firmwareVersion === '1.0.0'), 'every device back on 1.0.0', 20_000);
    // The rollout topics now carry a retained cancel: no manifest for a late device to pick up.
    expect((await c.auditEntries({ subject: d.id, limit: 500 })).map((e) => e.action)).toContain('deployment.rollback-started');
  });

  it('stops a bad image at its first wave: trial failures abort, the rest of the fleet is never touched', async () => {
    const { c, fleet } = await setup(kind, 16, { bootOutcome: (_id, boot) => (boot.trial ? 'reset' : 'up') });
    await uploadImage(c, '1.3.0');
    // Anchor the first wave at a known device so it is never empty (the offset is random otherwise).
    const first = fleet.devices[0]!.id;
    const d = await c.createDeployment({
      firmwareVersion: '1.3.0',
      target: { hardwareModels: ['rpi4'] },
      bucketOffset: bucketOf(first),
      waves: fastWaves([25, 100]),
      gatePolicy: { minReportingDevices: 1 },
    });
    await waitFor(async () => ['rolled-back', 'aborted'].includes((await phaseOf(c, d.id)) ?? ''), 'aborted', 60_000, 50);
    const view = (await c.deployment(d.id))!;
    expect(view.waves[1]!.status).not.toBe('passed');
    expect(view.waves[1]!.startedAt).toBeUndefined();
    const abortDecision = view.decisions!.find((x) => x.final.recommendation === 'Abort');
    expect(abortDecision).toBeDefined();
    expect(view.waves[0]!.counts['trialFailures']).toBeGreaterThan(0);
    for (const dev of fleet.devices) expect(dev.dev.bricked).toBe(false);
    await waitFor(() => c.devices().every((r) => r.firmwareVersion === '1.0.0'), 'every device on 1.0.0', 20_000);
    // Devices outside the first wave never saw the image: they never reported for this deployment.
    const touched = new Set((await c.deploymentDevices(d.id)).filter((p) => p.state !== 'pending').map((p) => p.deviceId));
    const untouched = fleet.devices.filter((x) => !touched.has(x.id));
    expect(untouched.length).toBeGreaterThan(0);
    expect(touched.has(first)).toBe(true);
  });
});
