/**
 * Both daemons as processes: `fleet coordinator start` (embedded Aedes, artifact server, admin API)
 * and `fleet agent start` with the credentials and trust store it provisioned. The coordinator is
 * stopped with SIGTERM while the device is updating — it exits 0, promptly — and started again on the
 * same data directory and ports; the agent stays up, reconnects and the coordinator sees it commit.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, spawnFleet, type RunningProcess } from '../support/processes.js';
import { image } from './harness.js';
import { AgentDaemon, uniqueDeviceId, waitFor, writeAgentConfig, type World, worldPerTest } from './daemon-harness.js';
import { adminApi } from '../support/admin-api.js';

let world: World;
const cleanups = worldPerTest((w) => (world = w));

async function startCoordinator(args: string[]): Promise<RunningProcess> {
  const p = spawnFleet(['coordinator', 'start', ...args], { env: { APP_ENV: 'development' } });
  cleanups.push(() => p.stop('SIGKILL'));
  await p.waitForLine(/"msg":"coordinator started"/, 30_000);
  return p;
}

describe('fleet coordinator start with a fleet agent start', () => {
  it('exits 0 on SIGTERM mid-update, and after its restart the agent, still up, commits', { timeout: 90_000 }, async () => {
    const dataDir = join(world.dir, 'coordinator');
    const mqttPort = await freePort();
    const httpPort = await freePort();
    const args = ['--data-dir', dataDir, '--mqtt-port', String(mqttPort), '--http-port', String(httpPort), '--log-level', 'info'];
    let coordinator = await startCoordinator(args);
    const api = adminApi(dataDir);

    const id = uniqueDeviceId();
    const { devices } = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: [id], hardwareModel: 'rpi4' });
    await api('POST', '/v1/firmware?version=1.1.0&hardware=rpi4', undefined, image('new', 2 * 1024 * 1024).body);
    const files = await writeAgentConfig(world.dir, id, { url: `mqtt://127.0.0.1:${mqttPort}`, username: id, password: devices[0]!.secret }, join(dataDir, 'trust'), {
      // The artifact server is the coordinator's: the download retries for as long as it is down.
      download: { retryBase: '100ms', retryMax: '1s', maxAttempts: 60, idleTimeout: '10s' },
    });
    const agent = AgentDaemon.start(files);
    cleanups.push(() => agent.stop('SIGKILL'));
    await agent.waitForLog('mqtt connected');
    const device = (): Promise<{ online: boolean; firmwareVersion: string | null }> => api('GET', `/v1/devices/${id}`);
    await waitFor(async () => (await device()).online, 'the coordinator to see the device online', 20_000);

    const created = await api<{ id: string }>('POST', '/v1/deployments', {
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [{ percent: 100, soakMs: 1_000, deadlineMs: 120_000, minDevicesReporting: 1 }],
    });
    await agent.waitForState('downloading');

    // SIGTERM while the device is updating: a clean stop, exit 0 (a hang would end in SIGKILL).
    expect(await coordinator.stop('SIGTERM', 15_000)).toEqual({ code: 0, signal: null });
    expect(coordinator.output()).toMatch(/"msg":"coordinator stopped"/);
    expect(coordinator.output()).not.toMatch(/handles still open/);
    // Mid-download, or already in a simulated reboot: either way the agent notices and keeps trying.
    await waitFor(() => agent.logged('mqtt connection lost').length + agent.logged('cannot reach the broker').length > 0, 'the agent to notice', 15_000);
    await agent.waitForLog('mqtt reconnect failed', agent.logged('mqtt reconnect failed').length + 2);

    // Back on the same ports: the download resumes and the update commits (the reconnect may be the
    // session's own, or the first connect of the agent the simulated reboot started).
    coordinator = await startCoordinator(args);
    await agent.waitForState('committed', 60_000);
    // The coordinator records the commit in the deployment it resumed after its restart.
    const deployment = (): Promise<{ phase: string; waves: { counts: Record<string, number> }[] }> => api('GET', `/v1/deployments/${created.id}`);
    await waitFor(async () => (await deployment()).waves[0]!.counts['committed'] === 1, `the coordinator to count the commit in ${created.id}`, 30_000).catch(
      async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(await deployment())}\n${coordinator.output().slice(-4000)}`);
      },
    );
    expect((await device()).firmwareVersion).toBe('1.1.0');
    expect(agent.alive).toBe(true);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    expect(await coordinator.stop('SIGINT', 15_000)).toEqual({ code: 0, signal: null });
  });
});
