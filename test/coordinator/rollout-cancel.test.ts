/**
 * An abort reaches a device that was offline when its wave was stopped: the coordinator leaves a
 * retained rollout-cancel on the wave's topics, and the agent (real, on the file slot backend) that
 * reconnects mid-download abandons the update instead of resuming it. The device's MQTT link runs
 * through a TCP relay the test can cut; its artifact download through an HTTP relay that stalls after
 * the first bytes (a slow artifact). The coordinator restarts while the device is away, so the queue of
 * its persistent session is gone and only a retained message can reach it. Everything on 127.0.0.1.
 */
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSlotBackend, SimulatedDevice, parseAgentConfig } from '../../agent/index.js';
import type { Coordinator } from '../../coordinator/index.js';
import { silentLogger, startCoordinator, tempDir, uniqueId, waitFor } from './helpers.js';
import { fastWaves, firmwareImage, uploadImage } from './fleet-harness.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

const listen = (s: HttpServer | TcpServer): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port)));

/** A TCP relay to the broker that the test can cut (dropping and refusing connections) and restore. */
async function mqttRelay(target: () => string): Promise<{ url: string; cut(): void; restore(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let up = true;
  const server = createTcpServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const u = new URL(target());
    const upstream = connect(Number(u.port), u.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  const port = await listen(server);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut: () => {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore: () => {
      up = true;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * An HTTP relay to the artifact server that sends the first `first` bytes of a body, then stalls;
 * `release()` sends the rest and resolves once every response it held has ended or been closed.
 */
async function slowArtifacts(target: () => string, first: number): Promise<{ url: string; bytes: () => number; release(): Promise<void>; close(): Promise<void> }> {
  let sentTotal = 0;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const responses: Promise<void>[] = [];
  const server = createHttpServer((req, res) => {
    responses.push(new Promise((r) => res.once('close', () => r())));
    const u = new URL(req.url ?? '/', target());
    const up = httpRequest(u, { method: req.method, headers: { ...req.headers, host: u.host } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let sent = 0;
      void (async () => {
        for await (const chunk of ur as AsyncIterable<Buffer>) {
          let rest = chunk;
          if (sent < first) {
            const head = rest.subarray(0, first - sent);
            res.write(head);
            sent += head.length;
            sentTotal += head.length;
            rest = rest.subarray(head.length);
          }
          if (rest.length === 0) continue;
          await released;
          res.write(rest);
          sent += rest.length;
          sentTotal += rest.length;
        }
        res.end();
      })().catch(() => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    bytes: () => sentTotal,
    release: async () => {
      release();
      await Promise.all(responses);
    },
    close: () => {
      release();
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('abort while a device is offline', () => {
  it('a device that reconnects mid-download after the abort abandons the update and never boots it', async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    let coordinator!: Coordinator;
    const artifacts = await slowArtifacts(() => coordinator.httpUrl, 4096);
    stops.push(() => artifacts.close());
    // The relays keep the device's URLs stable across the coordinator's restart.
    const start = async (): Promise<Coordinator> =>
      startCoordinator(dir, { config: { http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 64, publicUrl: artifacts.url } } });
    coordinator = await start();
    stops.push(() => coordinator.stop());
    const relay = await mqttRelay(() => coordinator.mqttUrl);
    stops.push(() => relay.close());

    const deviceId = uniqueId('d');
    const [cred] = await coordinator.provisionDevices([deviceId], { hardwareModel: 'rpi4' });
    const base = join(dir, 'devices', deviceId);
    await mkdir(base, { recursive: true });
    const factory = join(dir, 'factory.img');
    await writeFile(factory, firmwareImage('1.0.0'));
    const slots = await FileSlotBackend.create({ dir: join(base, 'slots'), factoryImage: factory });
    const dev = new SimulatedDevice({
      config: parseAgentConfig({
        deviceId,
        hardwareModel: 'rpi4',
        firmwareVersion: '1.0.0',
        broker: { url: relay.url, username: deviceId, password: cred!.secret, reconnectMin: 50, reconnectMax: 200 },
        trustStoreDir: coordinator.trustDir,
        dataDir: join(base, 'data'),
        slots: { kind: 'file', dir: join(base, 'slots') },
        telemetry: { interval: 3_600_000 },
        health: { brokerDeadline: 5_000, trialWindow: 20_000 },
        download: { retryBase: 50, retryMax: 500, maxAttempts: 40, idleTimeout: 20_000 },
      }),
      slots,
      logger: silentLogger,
    });
    await dev.start();
    stops.push(() => dev.stop());
    await waitFor(() => coordinator.device(deviceId)?.firmwareVersion === '1.0.0', 'hello registered');

    // Every stage the agent's job passes through, sampled on each state change and by polling.
    const stages = new Set<string>();
    const sample = setInterval(() => {
      const job = dev.agent?.state.job;
      if (job) stages.add(job.stage);
    }, 5);
    stops.push(() => clearInterval(sample));

    await uploadImage(coordinator, '1.1.0');
    const d = await coordinator.createDeployment({ firmwareVersion: '1.1.0', target: { hardwareModels: ['rpi4'] }, waves: fastWaves([100]) });
    // Downloading, stalled after the first bytes of the (slow) artifact.
    await waitFor(() => dev.agent?.state.job?.stage === 'downloading' && artifacts.bytes() >= 4096, 'download under way', 10_000);

    relay.cut();
    await waitFor(() => dev.agent?.connected === false, 'agent offline');
    // No rollback commands: only the retained cancel can stop this device (nothing of it is exposed).
    await coordinator.act(d.id, { type: 'abort', reason: 'bad build', rollback: false });
    await waitFor(async () => (await coordinator.deployment(d.id))?.phase === 'aborted', 'deployment aborted');
    // The embedded broker keeps sessions in memory: a restart loses what it queued for the offline
    // device, so only the retained message (restored from the coordinator's database) can tell it.
    await coordinator.stop();
    coordinator = await start();
    // Still downloading while offline: it has not heard of the abort.
    expect(dev.agent?.state.job).toMatchObject({ deploymentId: d.id, stage: 'downloading' });

    relay.restore();
    await waitFor(() => dev.agent?.state.job?.stage === 'done', 'agent abandoned the update', 10_000);
    expect(dev.agent!.state.job).toMatchObject({ deploymentId: d.id, result: 'failed', reason: 'aborted' });
    // The rest of the artifact arriving now changes nothing.
    await artifacts.release();
    await waitFor(
      async () => (await coordinator.deploymentDevices(d.id)).find((p) => p.deviceId === deviceId)?.state === 'failed',
      'coordinator heard the failed/aborted report',
    );
    expect((await coordinator.deploymentDevices(d.id)).find((p) => p.deviceId === deviceId)).toMatchObject({ state: 'failed', reason: 'aborted' });
    // Every byte delivered (or the connection closed) and every event it caused handled: nothing more.
    await dev.agent!.idle();
    expect(stages.has('trial')).toBe(false);
    expect(stages.has('rebooting')).toBe(false);
    expect(dev.agent!.state.booted).toBe('A');
    expect(dev.powerOns).toBe(0);
    expect(dev.agent!.state.job).toMatchObject({ stage: 'done', result: 'failed', reason: 'aborted' });
  });
});
