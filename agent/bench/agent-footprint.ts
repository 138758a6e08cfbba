/**
 * Benchmark: memory and CPU per Agent when many run in one process (the simulator's case), against
 * the bare mqtt.js client baseline measured in the same run. I/O shell; run after `npm run build`:
 *
 *   node dist/agent/bench/agent-footprint.js [agents=2000]
 *
 * A bare Aedes broker runs in a child process (so its memory is not counted). Each agent gets an
 * in-memory state store and slot backend, an injected trust store and a constant telemetry collector,
 * as the simulator does. Prints JSON: bytes per bare client, bytes per agent, the agent's overhead,
 * connect throughput, and the CPU time of one telemetry message and one rollout decision per agent.
 */
import { fork } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { generateSigningKey } from '../../firmware/keys.js';
import { createTrustStore } from '../../firmware/trust-store.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { Agent } from '../agent.js';
import { parseAgentConfig } from '../config.js';
import { MemoryStateStore } from '../state-store.js';
import type { BootState, SlotBackend } from '../slots/slot-backend.js';

const N = Number(process.argv[2] ?? 2000);
const phase = (name: string): void => {
  process.stderr.write(`[agent-footprint] ${name} at ${Math.round(performance.now())} ms\n`);
};
const WIDTH = 200;

class NullSlots implements SlotBackend {
  readonly kind = 'memory' as const;
  bootState(): Promise<BootState> {
    return Promise.resolve({ booted: 'A', primary: 'A', trial: false, bootCount: 1, bootId: 'b1' });
  }
  writeInactive(): Promise<void> {
    return Promise.resolve();
  }
  armTrial(): Promise<void> {
    return Promise.resolve();
  }
  markGood(): Promise<void> {
    return Promise.resolve();
  }
  markBad(): Promise<void> {
    return Promise.resolve();
  }
  reboot(): Promise<void> {
    return Promise.resolve();
  }
  private durable: string | null = null;
  readDurable(): Promise<string | null> {
    return Promise.resolve(this.durable);
  }
  writeDurable(record: string): Promise<void> {
    this.durable = record;
    return Promise.resolve();
  }
}

async function settledHeap(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 3; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

async function each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(WIDTH, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function startBroker(): Promise<{ url: string; stop: () => void }> {
  const dir = await mkdtemp(join(tmpdir(), 'agent-bench-'));
  const script = join(dir, 'broker.mjs');
  const aedesPath = createRequire(import.meta.url).resolve('aedes');
  await writeFile(
    script,
    `import { Aedes } from ${JSON.stringify(aedesPath)};
import { createServer } from 'node:net';
const aedes = await Aedes.createBroker();
const server = createServer(aedes.handle);
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('message', () => process.exit(0));`,
  );
  const child = fork(script, [], { stdio: 'inherit' });
  // Never leave the broker behind, even when the benchmark is interrupted.
  process.once('exit', () => child.kill());
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: () => {
      child.send('stop');
      void rm(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const broker = await startBroker();
  try {
    // Baseline: bare clients with the same session options.
    const m0 = await settledHeap();
    const bare: MqttClient[] = [];
    const t0 = performance.now();
    await each([...Array(N).keys()], async (i) => {
      bare.push(await mqtt.connectAsync(broker.url, { clientId: `bare-${i}`, clean: false, reconnectPeriod: 0 }));
    });
    const bareConnectS = (performance.now() - t0) / 1000;
    phase('bare clients connected');
    const m1 = await settledHeap();
    await Promise.all(bare.map((c) => c.endAsync(true)));
    bare.length = 0;

    const key = generateSigningKey();
    const trust = createTrustStore([key]);
    const logger = pino({ level: 'silent' });
    const m2 = await settledHeap();
    const agents: Agent[] = [];
    const t1 = performance.now();
    await each([...Array(N).keys()], async (i) => {
      const config = parseAgentConfig({
        deviceId: `bench-${i}`,
        hardwareModel: 'rpi4',
        firmwareVersion: '1.0.0',
        broker: { url: broker.url },
        trustStoreDir: '/unused',
        dataDir: '/unused',
        slots: { kind: 'memory' },
        logLevel: 'error',
      });
      const agent = await Agent.create({
        config,
        logger,
        trust,
        store: new MemoryStateStore(),
        slots: new NullSlots(),
        telemetry: { collect: () => Promise.resolve({ metrics: { cpuPct: 10, memUsedMb: 100 } }) },
        telemetryTimer: false,
      });
      await agent.start();
      agents.push(agent);
    });
    const deadline = Date.now() + 60_000;
    while (agents.some((a) => !a.connected) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const agentConnectS = (performance.now() - t1) / 1000;
    phase(`agents connected: ${agents.filter((a) => a.connected).length}/${N}`);
    const m3 = await settledHeap();

    const c0 = process.cpuUsage();
    for (const a of agents) await a.sendTelemetry();
    const cpu0 = process.cpuUsage(c0);
    const telemetryUs = (cpu0.user + cpu0.system) / N;

    // One rollout decision per agent: verify the signed manifest and refuse it (wrong hardware).
    const manifest = signManifest(
      buildManifest({ firmwareVersion: '1.1.0', hardware: ['other'], artifact: { url: 'http://127.0.0.1/x', size: 1, sha256: 'a'.repeat(64) }, issuedAt: Date.now() }),
      [key],
    );
    const c1 = process.cpuUsage();
    for (const a of agents) a.dispatch({ type: 'rollout-message', message: { v: 1, kind: 'rollout', deploymentId: 'bench-dep', wave: 0, manifest } });
    await Promise.all(agents.map((a) => a.idle()));
    const cpu1 = process.cpuUsage(c1);
    const rolloutUs = (cpu1.user + cpu1.system) / N;

    phase('rollout decided');
    await Promise.all(agents.map((a) => a.stop()));
    phase('agents stopped');
    console.log(
      JSON.stringify(
        {
          agents: N,
          bareHeapBytesPerClient: Math.round((m1.heap - m0.heap) / N),
          agentHeapBytesPerAgent: Math.round((m3.heap - m2.heap) / N),
          agentOverheadBytes: Math.round((m3.heap - m2.heap - (m1.heap - m0.heap)) / N),
          bareConnectPerS: Math.round(N / bareConnectS),
          agentConnectPerS: Math.round(N / agentConnectS),
          telemetryCpuUsPerMessage: Math.round(telemetryUs),
          rolloutDecisionCpuUsPerAgent: Math.round(rolloutUs),
        },
        null,
        2,
      ),
    );
  } finally {
    broker.stop();
  }
}

await main();
