/**
 * How `fleet agent start` ends, as a process: SIGTERM and SIGINT end it with 0 and its state saved,
 * even while it has no broker or its broker stopped answering; a failed reboot into an update ends it
 * with 1 for its supervisor to restart it; a fatal local error (bad config, unreadable state, an
 * unreadable password file) ends it at once with its message and 2, never a stack trace.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, spawnFleet, type RunningProcess } from '../support/processes.js';
import { INITIAL_AUTOBOOT } from '../slots/tryboot-harness.js';
import { makeSlotFiles } from '../slots/helpers.js';
import { image } from './harness.js';
import { AgentDaemon, PlainAedes, signedRollout, startHeldArtifacts, startSilentBroker, uniqueDeviceId, writeAgentConfig, type World, worldPerTest } from './daemon-harness.js';

let world: World;
const cleanups = worldPerTest((w) => (world = w));

async function fails(config: string): Promise<RunningProcess> {
  const p = spawnFleet(['agent', 'start', '-c', config]);
  cleanups.push(() => p.stop('SIGKILL'));
  await p.exited;
  return p;
}

/** The output is the error message alone (a config error lists each bad field on its own line): no logs, no stack trace. */
function errorOnly(p: RunningProcess): string {
  const lines = p.lines.filter((l) => l.trim() !== '');
  expect(lines[0], p.output()).toMatch(/^error \[[a-z-]+\]: /);
  expect(lines.filter((l) => /^\s+at |^\{/.test(l)), p.output()).toEqual([]);
  return lines.join('\n');
}

describe('fleet agent start ends', () => {
  it('with 0 on SIGTERM or SIGINT while it cannot reach its broker, its state saved', { timeout: 60_000 }, async () => {
    const id = uniqueDeviceId();
    const files = await writeAgentConfig(world.dir, id, { url: `mqtt://127.0.0.1:${await freePort()}` }, world.trustDir);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const agent = AgentDaemon.start(files);
      cleanups.push(() => agent.stop('SIGKILL'));
      await agent.waitForLog('mqtt reconnect failed', 3);
      expect(await agent.stop(signal)).toEqual({ code: 0, signal: null });
      expect(agent.logged('stopping')[0]).toMatchObject({ signal, exitCode: 0 });
      expect(agent.logged('handles still open')).toEqual([]);
      expect((await agent.state()).running).toBe(false);
    }
    // Two runs, each stopped cleanly: one restart, no crash.
    const agent = AgentDaemon.start(files);
    cleanups.push(() => agent.stop('SIGKILL'));
    await agent.waitForLog('agent started');
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    expect((await agent.state()).counters).toMatchObject({ agentRestarts: 2, crashes: 0 });
  });

  it('with 0 and nothing left running when the broker accepted it and then stopped answering', { timeout: 60_000 }, async () => {
    const broker = await startSilentBroker();
    cleanups.push(() => broker.close());
    const files = await writeAgentConfig(world.dir, uniqueDeviceId(), { url: broker.url }, world.trustDir);
    const agent = AgentDaemon.start(files);
    cleanups.push(() => agent.stop('SIGKILL'));
    await agent.waitForLog('mqtt connected');
    // Its hello and subscription are never acknowledged: the stop's waits run out, and then the
    // connection and every timer of it must be gone (the process ends by itself, not by the bound).
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    expect(agent.logged('stopped')).toHaveLength(1);
    expect(agent.logged('handles still open')).toEqual([]);
  });

  it('with 1 when the reboot into an update fails, so that its supervisor starts it again', { timeout: 60_000 }, async () => {
    // A Raspberry Pi tryboot device in files (as test/slots does), whose reboot command fails.
    const dev = join(world.dir, 'pi');
    const dt = join(dev, 'device-tree', 'chosen', 'bootloader');
    await mkdir(dt, { recursive: true });
    await mkdir(join(dev, 'boot'), { recursive: true });
    await writeFile(join(dev, 'boot', 'autoboot.txt'), INITIAL_AUTOBOOT);
    await writeFile(join(dt, 'partition'), Buffer.from([0, 0, 0, 2]));
    await writeFile(join(dt, 'tryboot'), Buffer.from([0, 0, 0, 0]));
    const parts = await makeSlotFiles(dev, Buffer.alloc(0), 512 * 1024);
    const broker = await PlainAedes.start();
    cleanups.push(() => broker.close());
    const artifacts = await startHeldArtifacts();
    cleanups.push(() => artifacts.close());
    const id = uniqueDeviceId();
    const files = await writeAgentConfig(world.dir, id, { url: broker.url }, world.trustDir, {
      slots: {
        kind: 'tryboot',
        bootDir: join(dev, 'boot'),
        deviceTreeRoot: join(dev, 'device-tree'),
        slots: { A: { device: parts.A, partition: 2 }, B: { device: parts.B, partition: 3 } },
        trybootRebootCommand: ['false'],
        rebootCommand: ['false'],
        armedMarker: join(dev, 'run', 'tryboot-armed'),
      },
    });
    const rollout = signedRollout(world.key, id, 'dep-reboot', artifacts.put('fw.img', image('new', 256 * 1024).body));
    await broker.publishRetained(rollout.topic, rollout.payload);
    const agent = AgentDaemon.start(files);
    cleanups.push(() => agent.stop('SIGKILL'));
    expect(await agent.process.exited).toEqual({ code: 1, signal: null });
    expect(agent.logged('reboot failed')).toHaveLength(1);
    expect(agent.logged('stopping')[0]).toMatchObject({ exitCode: 1, reason: expect.stringMatching(/^the reboot failed: /) as unknown });
    expect((await agent.state()).job).toMatchObject({ deploymentId: 'dep-reboot', stage: 'rebooting' });
  });

  it('with 2 and the bad field named when the config is wrong', { timeout: 30_000 }, async () => {
    const files = await writeAgentConfig(world.dir, uniqueDeviceId(), { url: 'mqtt://127.0.0.1:1' }, world.trustDir, { telemetry: { interval: 'often' } });
    const p = await fails(files.config);
    expect(p.exit).toEqual({ code: 2, signal: null });
    expect(errorOnly(p)).toMatch(/^error \[config\]: [^]*telemetry\.interval: "often" is not a duration/);
  });

  it('with 2 and what to do when its state file is unreadable', { timeout: 30_000 }, async () => {
    const files = await writeAgentConfig(world.dir, uniqueDeviceId(), { url: 'mqtt://127.0.0.1:1' }, world.trustDir);
    await mkdir(files.dataDir, { recursive: true });
    await writeFile(join(files.dataDir, 'state.json'), '{"v":1,"seq":');
    const p = await fails(files.config);
    expect(p.exit).toEqual({ code: 2, signal: null });
    expect(errorOnly(p)).toMatch(/^error \[state-store\]: .*state\.json.*Move the file aside/);
  });

  it('with 2 and the field named when the broker password file cannot be read', { timeout: 30_000 }, async () => {
    const id = uniqueDeviceId();
    const files = await writeAgentConfig(world.dir, id, { url: 'mqtt://127.0.0.1:1', username: id, password: 'x' }, world.trustDir);
    await rm(files.passwordFile);
    const p = await fails(files.config);
    expect(p.exit).toEqual({ code: 2, signal: null });
    expect(errorOnly(p)).toMatch(/^error \[config\]: broker\.passwordFile .*broker-password cannot be read/);
    // Refused before the run was recorded: the next start counts neither a crash nor a restart.
    const state = JSON.parse(await readFile(join(files.dataDir, 'state.json'), 'utf8').catch(() => '{}')) as { running?: boolean };
    expect(state.running ?? false).toBe(false);
  });
});
