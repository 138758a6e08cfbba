/**
 * Hostile: statuses for what was never offered. Real agents on loopback roll out in two waves; a
 * provisioned rogue device whose bucket is in the second wave claims a trial-boot failure while only
 * the first wave runs. Its claim is an anomaly on the rogue (API, CLI, metrics, log) and never reaches
 * a gate: the first wave passes, the second starts, nobody is rolled back. Once its own wave has
 * started (its bucket published), the same device's reports count.
 */
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic } from '../../protocol/topics.js';
import { spawnFleet } from '../support/processes.js';
import { startCoordinator, tempDir, uniqueId, waitFor } from '../coordinator/helpers.js';
import { fastWaves, startFleet, uploadImage } from '../coordinator/fleet-harness.js';
import { helloPayload } from './hostile-harness.js';

/** Rank of a bucket for a deployment offset; wave 1 of [50, 100] holds ranks below 512. */
const rank = (bucket: number, offset: number): number => (((bucket - offset) % 1024) + 1024) % 1024;

describe('hostile: statuses for updates never offered', () => {
  it('a device outside the running wave cannot abort the rollout; once its wave starts it counts', { timeout: 180_000 }, async () => {
    const { dir, cleanup } = tempDir();
    const c = await startCoordinator(dir);
    const fleet = await startFleet(c, dir, 6);
    const anchor = fleet.devices[0]!.id;
    const offset = bucketOf(anchor);
    // A rogue whose bucket falls in the second wave.
    let rogue = uniqueId('rogue');
    while (rank(bucketOf(rogue), offset) < 512) rogue = uniqueId('rogue');
    const [cred] = await c.provisionDevices([rogue], { hardwareModel: 'rpi4' });
    const client = await mqtt.connectAsync(c.mqttUrl, { clientId: rogue, username: rogue, password: cred!.secret, reconnectPeriod: 0 });
    try {
      await client.publishAsync(deviceTopic(rogue, 'hello'), helloPayload(rogue, 'rpi4', '1.0.0'), { qos: 1 });
      await waitFor(() => c.device(rogue)?.firmwareVersion === '1.0.0', 'rogue registered');
      await uploadImage(c, '1.1.0');
      const d = await c.createDeployment({
        firmwareVersion: '1.1.0',
        target: { hardwareModels: ['rpi4'] },
        bucketOffset: offset,
        waves: [...fastWaves([50], 300), { percent: 100, requiresApproval: true, soakMs: 300, deadlineMs: 60_000, minDevicesReporting: 1 }],
        gatePolicy: { minReportingDevices: 1 },
      });
      const status = (state: string, seq: number, extra: Record<string, unknown> = {}): string =>
        JSON.stringify({ v: 1, kind: 'status', deviceId: rogue, deploymentId: d.id, fromVersion: '1.1.0', toVersion: '1.0.0', state, seq, at: Date.now(), ...extra });
      // While wave 1 runs: a trial-boot failure, twice.
      await client.publishAsync(deviceTopic(rogue, 'status'), status('rolled-back', 1, { reason: 'trial-boot-failed' }), { qos: 1 });
      await client.publishAsync(deviceTopic(rogue, 'status'), status('rolled-back', 2, { reason: 'trial-boot-failed' }), { qos: 1 });
      await waitFor(() => c.anomalies(rogue).find((a) => a.kind === 'unoffered-status' && a.count === 2), 'two unoffered-status anomalies on the rogue');

      // Wave 1 passes its gate and waits for approval: the rogue's claims fed nothing.
      await waitFor(async () => (await c.deployment(d.id))?.waitingFor.includes('approval'), 'wave 2 waiting for approval', 90_000, 50);
      const view = (await c.deployment(d.id))!;
      expect(view.phase).toBe('pending');
      expect(view.waves[0]!.verdict).toBe('Proceed');
      expect(view.waves.map((w) => w.counts['trialFailures'] ?? 0)).toEqual([0, 0]);
      expect((await c.deploymentDevices(d.id)).find((p) => p.deviceId === rogue)).toBeUndefined();
      expect(c.counter('anomalies.unoffered-status')).toBe(2);

      // Operators see it: the CLI, as a process, against this coordinator.
      const cli = spawnFleet(['devices', 'anomalies', '--kind', 'unoffered-status', '--data-dir', c.config.dataDir]);
      await cli.exited;
      expect(cli.output()).toContain(rogue);
      expect(cli.output()).toMatch(/unoffered-status.*wave 2 has not started/);

      // Its wave starts: the rogue's bucket is published, so now its reports count.
      await c.act(d.id, { type: 'approve' });
      await waitFor(async () => (await c.deploymentDevices(d.id)).some((p) => p.deviceId === rogue), 'rogue a member of wave 2', 30_000);
      await client.publishAsync(deviceTopic(rogue, 'status'), JSON.stringify({ v: 1, kind: 'status', deviceId: rogue, deploymentId: d.id, fromVersion: '1.0.0', toVersion: '1.1.0', state: 'committed', seq: 3, at: Date.now() }), { qos: 1 });
      await waitFor(async () => (await c.deployment(d.id))?.phase === 'completed', 'deployment completed', 90_000, 50);
      expect((await c.deploymentDevices(d.id)).find((p) => p.deviceId === rogue)?.state).toBe('committed');
      expect(c.anomalies(rogue).find((a) => a.kind === 'unoffered-status')?.count).toBe(2);
      // Nobody else was touched: every real agent committed 1.1.0, none rolled back.
      await waitFor(() => fleet.devices.every((x) => c.device(x.id)?.firmwareVersion === '1.1.0'), 'every agent on 1.1.0', 30_000);
      expect((await c.deployment(d.id))!.decisions!.some((x) => x.final.recommendation === 'Abort')).toBe(false);
    } finally {
      await client.endAsync(true);
      await fleet.stop();
      await c.stop();
      cleanup();
    }
  });
});
