/**
 * A rollout that runs longer than its manifest lives (7 days): a real coordinator and real agents
 * share a clock the test moves forward by days. The coordinator signs the deployment's manifest afresh
 * on day 3.5 and day 7 and re-publishes it retained, so a device that comes online on day 8 takes it
 * and installs; the device that installed on day 0 receives both renewals and does nothing with them.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startCoordinator, tempDir, waitFor } from './helpers.js';
import { startFleet, uploadImage } from './fleet-harness.js';
import { JumpClock } from './jump-clock.js';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;

describe('a rollout longer than a manifest lives', () => {
  it('reaches a device that comes online on day 8, and leaves the one that installed on day 0 alone', { timeout: 120_000 }, async () => {
    const clock = new JumpClock();
    const t = tempDir('fleet-long-rollout-');
    onTestFinished(t.cleanup);
    for (const sub of ['early', 'late']) mkdirSync(join(t.dir, sub));
    const c = await startCoordinator(join(t.dir, 'coordinator'), { clock });
    onTestFinished(() => c.stop());
    await uploadImage(c, '1.1.0');
    const early = await startFleet(c, join(t.dir, 'early'), 1, { clock });
    onTestFinished(() => early.stop());
    const first = early.devices[0]!;

    // One wave for every device, soaking 9 days: the deployment is still running on day 8.
    const d = await c.createDeployment({
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 100, soakMs: 9 * DAY, deadlineMs: 10 * DAY, minDevicesReporting: 1 }],
    });
    await waitFor(async () => (await c.deployment(d.id))?.phase === 'soaking', 'the day-0 device committed and the wave soaking', 60_000);
    const signed = (await c.deployment(d.id))!.manifest!;
    expect(Date.parse(signed.expiresAt) - Date.parse(signed.issuedAt)).toBe(7 * DAY);
    const downloads = c.counter('artifacts.completed');
    const powerOns = first.dev.powerOns;
    const reported = (await c.deploymentDevices(d.id)).find((p) => p.deviceId === first.id)!;
    expect(reported).toMatchObject({ state: 'committed' });

    const renewals = async (): Promise<number> => (await c.auditEntries({ subject: d.id, limit: 500 })).filter((e) => e.action === 'deployment.manifest-renewed').length;
    clock.jump(3.5 * DAY + MIN);
    await waitFor(async () => (await renewals()) === 1, 'the renewal on day 3.5');
    clock.jump(3.5 * DAY);
    await waitFor(async () => (await renewals()) === 2, 'the renewal on day 7');
    clock.jump(DAY);
    // Day 8: the manifest signed on day 0 has expired; the one the topics carry has not.
    const renewed = (await c.deployment(d.id))!.manifest!;
    expect(Date.parse(signed.expiresAt)).toBeLessThan(clock.now());
    expect(Date.parse(renewed.expiresAt)).toBeGreaterThan(clock.now() + 5 * DAY);
    expect(renewed.metadataVersion!).toBeGreaterThan(signed.metadataVersion!);
    expect(renewed.deploymentId).toBe(d.id);

    const late = await startFleet(c, join(t.dir, 'late'), 1, { clock });
    onTestFinished(() => late.stop());
    const newcomer = late.devices[0]!.id;
    await waitFor(async () => (await c.deploymentDevices(d.id)).find((p) => p.deviceId === newcomer)?.state === 'committed', 'the day-8 device installed and committed', 60_000);
    await waitFor(() => c.device(newcomer)?.firmwareVersion === '1.1.0', 'the day-8 device runs 1.1.0');
    expect((await c.deployment(d.id))!.phase).toBe('soaking');
    expect((await c.deploymentDevices(d.id)).find((p) => p.deviceId === newcomer)).toMatchObject({ late: true });
    // The day-0 device took both renewals as the update it already has: no download, no reboot, no status.
    expect(c.counter('artifacts.completed')).toBe(downloads + 1);
    expect(first.dev.powerOns).toBe(powerOns);
    expect((await c.deploymentDevices(d.id)).find((p) => p.deviceId === first.id)).toEqual(reported);
    expect(c.counter('device.refusals.stale-manifest')).toBe(0);
  });
});
