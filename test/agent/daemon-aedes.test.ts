/**
 * `fleet agent start` as a process against a plain Aedes on loopback: started with no broker up, and
 * with its session taken over by another client. Each time it stays alive, reconnects, and finishes
 * the update that was in flight; SIGTERM then ends it with 0.
 */
import mqtt from 'mqtt';
import { beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/processes.js';
import { image } from './harness.js';
import { AgentDaemon, PlainAedes, signedRollout, startHeldArtifacts, uniqueDeviceId, waitFor, writeAgentConfig, type HeldArtifacts, type World, worldPerTest } from './daemon-harness.js';

let world: World;
let artifacts: HeldArtifacts;
const cleanups = worldPerTest((w) => (world = w));

beforeEach(async () => {
  artifacts = await startHeldArtifacts();
  // Pushed first, so it closes after everything a test started, before the world goes.
  cleanups.push(() => artifacts.close());
});

function track(agent: AgentDaemon): AgentDaemon {
  cleanups.push(() => agent.stop('SIGKILL'));
  return agent;
}

describe('the agent daemon against a plain Aedes', () => {
  it('starts with no broker up, keeps retrying, and finishes the update it was in', { timeout: 60_000 }, async () => {
    const broker = await PlainAedes.start(await freePort());
    cleanups.push(() => broker.close());
    const id = uniqueDeviceId();
    const files = await writeAgentConfig(world.dir, id, { url: broker.url }, world.trustDir, { telemetry: { interval: '300ms' } });
    const artifact = artifacts.put('fw-1.1.0.img', image('new', 256 * 1024).body);
    const rollout = signedRollout(world.key, id, 'dep-nobroker', artifact);
    await broker.publishRetained(rollout.topic, rollout.payload);
    artifacts.hold();

    // First run: the update starts, then the agent is stopped mid-download (state saved, exit 0).
    const first = track(AgentDaemon.start(files));
    await first.waitForState('downloading');
    expect(await first.stop()).toEqual({ code: 0, signal: null });
    const saved = await first.state();
    expect(saved.running).toBe(false);
    expect(saved.job?.stage).toBe('downloading');

    // Second run with the broker down: never fatal, it keeps trying. The download resumes and the
    // update reaches its trial, which waits for the broker.
    await broker.close();
    artifacts.release();
    const agent = track(AgentDaemon.start(files));
    await agent.waitForLog('cannot reach the broker');
    expect(agent.logged('cannot reach the broker')[0]!['level']).toBe(40);
    await agent.waitForState('trial');
    // Nothing but the reconnect backoff and the trial's timers left: the process must stay up anyway,
    // retrying, for seconds after the last socket (the download's keep-alive) closed.
    artifacts.closeIdle();
    await agent.waitForLogAfter('mqtt reconnect failed', 'rebooting', 4_000);
    await broker.restart();
    await waitFor(() => broker.statuses(id).some((s) => s.state === 'committed'), 'committed at the broker', 30_000);
    expect(agent.alive).toBe(true);
    await agent.waitForLog('mqtt reconnected');

    // One real process restart, no crash, one (simulated) reboot into the update; reconnects count nothing.
    const committedAt = broker.statuses(id).find((s) => s.state === 'committed')!.at;
    await waitFor(() => broker.telemetry(id).some((t) => t.at > committedAt), 'telemetry after the commit', 15_000);
    const last = broker.telemetry(id).at(-1)!;
    expect(last.firmwareVersion).toBe('1.1.0');
    expect(last.counters).toMatchObject({ agentRestarts: 1, crashes: 0, reboots: 1 });

    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    expect(agent.logged('handles still open')).toEqual([]);
    expect((await agent.state()).running).toBe(false);
  });

  it('backs off when another client takes its session over, says so, and finishes the update', { timeout: 60_000 }, async () => {
    const broker = await PlainAedes.start();
    cleanups.push(() => broker.close());
    const id = uniqueDeviceId();
    // A long reconnectMax: a connection counts as stable (resetting the backoff) only after that long.
    const files = await writeAgentConfig(world.dir, id, { url: broker.url, reconnectMin: '100ms', reconnectMax: '30s' }, world.trustDir);
    const artifact = artifacts.put('fw-1.1.0.img', image('new', 256 * 1024).body);
    const rollout = signedRollout(world.key, id, 'dep-takeover', artifact);
    await broker.publishRetained(rollout.topic, rollout.payload);
    artifacts.hold();
    const agent = track(AgentDaemon.start(files));
    await agent.waitForState('downloading');

    for (let i = 1; i <= 3; i++) {
      // Another client with the device's id: the broker hands it the session and drops the agent's
      // connection; the agent comes back after its backoff and takes the session back.
      const intruder = await mqtt.connectAsync(broker.url, { clientId: id, clean: false, reconnectPeriod: 0 });
      intruder.on('error', () => undefined);
      await agent.waitForLog('another client may have taken over', i);
      await intruder.endAsync(true);
    }
    const takeovers = agent.logged('another client may have taken over');
    expect(takeovers.every((l) => l['level'] === 40)).toBe(true);
    // The backoff kept growing across the short-lived connections: no tight reconnect fight.
    expect(agent.logged('mqtt connection lost').map((l) => l['attempt'])).toEqual([1, 2, 3]);
    expect(takeovers.map((l) => l['attempt'])).toEqual([1, 2, 3]);

    artifacts.release();
    await waitFor(() => broker.statuses(id).some((s) => s.state === 'committed'), 'committed at the broker', 30_000);
    expect(agent.alive).toBe(true);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  });
});
