/**
 * A connect storm against one node, as processes: `fleet coordinator start` with a small CONNECT
 * admission bound, then hundreds of provisioned devices connecting at once over loopback. The node
 * refuses what it cannot take with CONNACK 3 (server unavailable) before any credential work, counts
 * it, and every client that backs off (the agent's own full-jitter backoff) gets in. Then the agent
 * daemon itself, `fleet agent start`, against a node whose admission rate another client keeps
 * drained: refused, it stays up, backs off, and connects once there is room.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { reconnectDelay } from '../../agent/mqtt-session.js';
import { adminApi, type AdminApi } from '../support/admin-api.js';
import { spawnFleet } from '../support/processes.js';
import { AgentDaemon, waitFor, worldPerTest, writeAgentConfig, type World } from '../agent/daemon-harness.js';

let world: World;
const cleanups = worldPerTest((w) => (world = w));

interface Node {
  dataDir: string;
  api: AdminApi;
  mqttUrl: string;
}

async function startNode(name: string, env: Record<string, string>): Promise<Node> {
  const dataDir = join(world.dir, name);
  const p = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', '--log-level', 'info'], {
    env: { APP_ENV: 'development', FLEET_CREDENTIAL_COST: '4', ...env },
  });
  cleanups.push(() => p.stop('SIGKILL'));
  const started = await p.waitForLine(/"msg":"coordinator started"/, 30_000);
  const mqttUrl = (JSON.parse(started) as { mqttUrl: string }).mqttUrl;
  return { dataDir, api: adminApi(dataDir), mqttUrl };
}

async function provision(api: AdminApi, ids: string[]): Promise<Map<string, string>> {
  const { devices } = await api<{ devices: { deviceId: string; secret: string }[] }>('POST', '/v1/devices/provision', { deviceIds: ids, hardwareModel: 'rpi4' });
  return new Map(devices.map((d) => [d.deviceId, d.secret]));
}

const codeOf = (err: Error): unknown => (err as { code?: unknown }).code;

/**
 * Connects like a device in a storm: on a refusal or failure, waits the agent's full-jitter backoff
 * and tries again (bounded). Resolves with the connected client and the CONNACK 3 refusals it met.
 */
function stormClient(url: string, id: string, secret: string): Promise<{ client: MqttClient; busy: number }> {
  let busy = 0;
  return new Promise((resolve, reject) => {
    const attempt = (n: number): void => {
      if (n > 200) return reject(new Error(`${id}: not connected after 200 attempts`));
      const c = mqtt.connect(url, { clientId: id, username: id, password: secret, clean: false, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 60 });
      let settled = false;
      const retry = (err?: Error): void => {
        if (settled) return;
        settled = true;
        if (err && codeOf(err) === 3) busy++;
        c.end(true);
        setTimeout(() => attempt(n + 1), reconnectDelay(n, 50, 2_000, Math.random()));
      };
      c.once('connect', () => {
        settled = true;
        c.on('error', () => undefined);
        resolve({ client: c, busy });
      });
      c.once('error', retry);
      c.once('close', () => retry());
    };
    attempt(0);
  });
}

interface Metrics {
  counters: Record<string, number>;
  devices: { connected: number | null };
}

describe('connect storm on one node', () => {
  it('refuses past its admission bound with CONNACK 3, counted, and every device that backs off connects', { timeout: 120_000 }, async () => {
    const node = await startNode('storm', { FLEET_MQTT_MAX_CONNECTING: '4' });
    const ids = Array.from({ length: 300 }, (_, i) => `storm-${String(i).padStart(3, '0')}`);
    const secrets = await provision(node.api, ids);
    const clients: MqttClient[] = [];
    cleanups.push(() => Promise.all(clients.map((c) => c.endAsync(true))));

    const results = await Promise.all(ids.map((id) => stormClient(node.mqttUrl, id, secrets.get(id)!)));
    clients.push(...results.map((r) => r.client));
    const refusedSeen = results.reduce((n, r) => n + r.busy, 0);
    console.log(`300 devices at once against an admission bound of 4: ${refusedSeen} CONNACK 3 refusals seen by the devices`);

    expect(results.every((r) => r.client.connected)).toBe(true);
    expect(refusedSeen).toBeGreaterThan(0);
    const metrics = await node.api<Metrics>('GET', '/v1/metrics');
    // Every refusal a device saw was counted (a refusal whose client had already gone is counted too).
    expect(metrics.counters['mqtt.connect.overloaded']).toBeGreaterThanOrEqual(refusedSeen);
    // Refused before any credential check: none of them is a failed login.
    expect(metrics.counters['mqtt.auth.refused'] ?? 0).toBe(0);
    await waitFor(async () => (await node.api<Metrics>('GET', '/v1/metrics')).devices.connected === 300, 'the node to hold all 300 sessions', 30_000);
  });

  it('keeps the agent daemon up through refusals: it backs off and connects once there is room', { timeout: 120_000 }, async () => {
    // One new CONNECT every 5 s: a client retrying in a tight loop takes each as it comes.
    const node = await startNode('drained', { FLEET_MQTT_CONNECTS_PER_SECOND: '0.2' });
    const secrets = await provision(node.api, ['storm-hog', 'storm-agent']);
    let hogging = true;
    const hog = (async (): Promise<void> => {
      while (hogging) {
        const c = mqtt.connect(node.mqttUrl, { clientId: 'storm-hog', username: 'storm-hog', password: secrets.get('storm-hog')!, reconnectPeriod: 0, clean: true });
        await new Promise<void>((resolve) => {
          c.once('connect', () => resolve());
          c.once('error', () => resolve());
          c.once('close', () => resolve());
        });
        await c.endAsync(true);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    cleanups.push(() => ((hogging = false), hog));

    const files = await writeAgentConfig(world.dir, 'storm-agent', { url: node.mqttUrl, username: 'storm-agent', password: secrets.get('storm-agent')!, reconnectMin: '200ms', reconnectMax: '2s' }, join(node.dataDir, 'trust'));
    const agent = AgentDaemon.start(files);
    cleanups.push(() => agent.stop('SIGKILL'));
    await agent.waitForLog('the broker is busy', 1, 60_000);
    hogging = false;
    await hog;
    // Its first connection, after refusals: logged as a reconnect (the session had an outage).
    await agent.waitForLog('mqtt reconnected', 1, 60_000);
    expect(agent.alive).toBe(true);
    expect(agent.logged('the broker is busy')[0]).toMatchObject({ code: 3 });
    const metrics = await node.api<Metrics>('GET', '/v1/metrics');
    expect(metrics.counters['mqtt.connect.overloaded']).toBeGreaterThan(0);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  });
});
