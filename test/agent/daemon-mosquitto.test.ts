/**
 * `fleet agent start` as a process against Debian's Mosquitto: the broker stopped in the middle of an
 * update and started again, and the broker refusing the device's credentials. Each time the agent
 * stays alive, keeps its offline buffer within its bound, reconnects and finishes the update; the
 * restarts it counts are its own process restarts, never its reconnects.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { beforeEach, describe, expect, it } from 'vitest';
import { hasMosquitto, Mosquitto } from '../support/mosquitto.js';
import { image } from './harness.js';
import {
  AgentDaemon,
  signedRollout,
  startHeldArtifacts,
  statusesOf,
  telemetryOf,
  uniqueDeviceId,
  waitFor,
  Watcher,
  writeAgentConfig,
  type HeldArtifacts,
  type World,
  worldPerTest,
} from './daemon-harness.js';

const COORD = { username: 'coord', password: 'coord-secret' };

let world: World;
let artifacts: HeldArtifacts;
const cleanups = worldPerTest((w) => (world = w));

beforeEach(async () => {
  artifacts = await startHeldArtifacts();
  // Pushed first, so it closes after everything a test started, before the world goes.
  cleanups.push(() => artifacts.close());
});

/** Mosquitto with the device's and the coordinator's users; QoS 0 is queued for a watcher that is away. */
async function startBroker(deviceId: string, devicePassword: string): Promise<Mosquitto> {
  const broker = await Mosquitto.start({ users: { [deviceId]: devicePassword, coord: COORD.password }, extra: ['queue_qos0_messages true'] });
  cleanups.push(() => broker.close());
  return broker;
}

/** Offers the update as the coordinator does: the signed manifest, retained, on the device's wave topic. */
async function offer(broker: Mosquitto, deviceId: string, deploymentId: string): Promise<void> {
  const artifact = artifacts.put(`${deploymentId}.img`, image(deploymentId, 256 * 1024).body);
  const rollout = signedRollout(world.key, deviceId, deploymentId, artifact);
  const client = await mqtt.connectAsync(broker.url, { ...COORD, reconnectPeriod: 0 });
  await client.publishAsync(rollout.topic, rollout.payload, { qos: 1, retain: true });
  await client.endAsync();
}

async function watch(broker: Mosquitto, deviceId: string): Promise<Watcher> {
  const w = await Watcher.connect(broker.url, deviceId, COORD);
  cleanups.push(() => w.close());
  return w;
}

function startAgent(files: Parameters<typeof AgentDaemon.start>[0]): AgentDaemon {
  const agent = AgentDaemon.start(files);
  cleanups.push(() => agent.stop('SIGKILL'));
  return agent;
}

async function committed(watcher: Watcher, deviceId: string): Promise<void> {
  await waitFor(() => statusesOf(deviceId, watcher.published).some((s) => s.state === 'committed'), 'committed at the broker', 30_000);
}

describe.skipIf(!hasMosquitto)('the agent daemon against Mosquitto', () => {
  it('stays up while the broker is stopped mid-update, buffers within its bound, commits, and counts only real restarts', { timeout: 60_000 }, async () => {
    const id = uniqueDeviceId();
    const broker = await startBroker(id, 'dev-secret');
    const watcher = await watch(broker, id);
    await offer(broker, id, 'dep-outage');
    artifacts.hold();
    const files = await writeAgentConfig(world.dir, id, { url: broker.url, username: id, password: 'dev-secret' }, world.trustDir, {
      telemetry: { interval: '200ms' },
      offlineQueueLimit: 5,
    });
    const agent = startAgent(files);
    await waitFor(() => statusesOf(id, watcher.published).some((s) => s.state === 'downloading'), 'downloading at the broker', 30_000);

    await broker.stop();
    await agent.waitForLog('mqtt connection lost');
    const offlineFrom = Date.now();
    // The update goes on without the broker: download, install, reboot into the trial, which waits.
    artifacts.release();
    await agent.waitForState('trial');
    artifacts.closeIdle();
    await agent.waitForLog('offline queue full');
    await agent.waitForLogAfter('mqtt reconnect failed', 'rebooting', 3_000);
    expect(agent.logged('mqtt connection lost')[0]!['level']).toBe(40);

    await broker.restart();
    await committed(watcher, id);
    expect(agent.alive).toBe(true);

    // What was buffered while offline reached the broker, no more than the bound.
    const reconnectedAt = agent.logged('mqtt reconnected')[0]!['time'] as number;
    const buffered = telemetryOf(id, watcher.published).filter((t) => t.at > offlineFrom && t.at < reconnectedAt);
    expect(buffered.length).toBeGreaterThan(0);
    expect(buffered.length).toBeLessThanOrEqual(5);
    // Reconnects are no restarts and no crashes; the update's reboot is a reboot.
    const afterCommit = (): number => telemetryOf(id, watcher.published).filter((t) => t.firmwareVersion === '1.1.0').length;
    await waitFor(() => afterCommit() > 0, 'telemetry from 1.1.0', 15_000);
    expect(telemetryOf(id, watcher.published).at(-1)!.counters).toMatchObject({ agentRestarts: 0, crashes: 0, reboots: 1 });

    // A stop and a start is one restart; a kill and a start is one more, and a crash.
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    expect(agent.logged('handles still open')).toEqual([]);
    const seen = watcher.published.length;
    const again = startAgent(files);
    await waitFor(() => telemetryOf(id, watcher.published.slice(seen)).length > 0, 'telemetry after the restart', 15_000);
    expect(telemetryOf(id, watcher.published).at(-1)!.counters).toMatchObject({ agentRestarts: 1, crashes: 0, reboots: 1 });
    expect(await again.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const seen2 = watcher.published.length;
    const third = startAgent(files);
    await waitFor(() => telemetryOf(id, watcher.published.slice(seen2)).length > 0, 'telemetry after the crash', 15_000);
    expect(telemetryOf(id, watcher.published).at(-1)!.counters).toMatchObject({ agentRestarts: 2, crashes: 1, reboots: 1 });
    expect(await third.stop('SIGINT')).toEqual({ code: 0, signal: null });
  });

  it('keeps retrying a refused login with the long backoff, says so, and finishes once it is let in', { timeout: 60_000 }, async () => {
    const id = uniqueDeviceId();
    const broker = await startBroker(id, 'dev-secret');
    const watcher = await watch(broker, id);
    await offer(broker, id, 'dep-refused');
    artifacts.hold();
    const files = await writeAgentConfig(world.dir, id, { url: broker.url, username: id, password: 'dev-secret', reconnectMax: '1s' }, world.trustDir);
    const agent = startAgent(files);
    await waitFor(() => statusesOf(id, watcher.published).some((s) => s.state === 'downloading'), 'downloading at the broker', 30_000);

    // The broker no longer accepts the device's password (its credentials changed on the broker).
    const passwords = join(broker.dir, 'passwords');
    await broker.stop();
    execFileSync('mosquitto_passwd', ['-b', passwords, id, 'something-else']);
    await broker.restart();
    await agent.waitForLog('the broker refused this client', 2);
    artifacts.release();
    await agent.waitForState('trial');
    artifacts.closeIdle();
    await agent.waitForLogAfter('the broker refused this client', 'rebooting', 3_000);
    for (const line of agent.logged('the broker refused this client')) {
      expect(line['level']).toBe(50);
      expect([4, 5]).toContain(line['code']);
      // The long end of the backoff: reconnectMax/2 .. reconnectMax.
      expect(line['delayMs']).toBeGreaterThanOrEqual(500);
      expect(line['delayMs']).toBeLessThanOrEqual(1000);
    }

    // The device's credentials are put back: the agent gets in on its next attempt and commits.
    await broker.stop();
    execFileSync('mosquitto_passwd', ['-b', passwords, id, 'dev-secret']);
    await broker.restart();
    await committed(watcher, id);
    expect(agent.alive).toBe(true);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  });
});
