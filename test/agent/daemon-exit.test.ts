/**
 * How `fleet agent start` ends, as a process: SIGTERM and SIGINT end it with 0 and its state saved,
 * even while it has no broker; a fatal local error (bad config, unreadable state, an unreadable
 * password file) ends it at once with one clear line and a non-zero code, never a stack trace.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort, spawnFleet, type RunningProcess } from '../support/processes.js';
import { AgentDaemon, startSilentBroker, startWorld, uniqueDeviceId, writeAgentConfig, type World } from './daemon-harness.js';

let world: World;
const cleanups: Array<() => Promise<unknown>> = [];
beforeEach(async () => {
  world = await startWorld();
});
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  await world.close();
});

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
  });
});
