/**
 * Latency of simple admin API GETs against a bare node:http server answering the same kind of JSON in
 * the same run (a shared machine's noise then weighs on both sides of the ratio). Sequential requests
 * over one keep-alive connection; rounds interleave the targets and the best round of each counts.
 * Run: `npm run build && node dist/coordinator/bench/admin-api-latency.js [--requests 4000] [--rounds 3]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createCoordinator } from '../coordinator.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const REQUESTS = arg('requests', 4000);
const ROUNDS = arg('rounds', 3);

interface Target {
  name: string;
  url: string;
  token?: string;
}

function get(agent: Agent, target: Target): Promise<void> {
  const url = new URL(target.url);
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: url.pathname + url.search, headers: target.token ? { authorization: `Bearer ${target.token}` } : {} }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${target.name}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Per-request latencies in microseconds, sorted. */
async function measure(target: Target, n: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 200; i++) await get(agent, target);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await get(agent, target);
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  agent.destroy();
  return out.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function bareServer(): Promise<Server> {
  const server = createServer((_req, res) => {
    const body = JSON.stringify({ ok: true, env: 'development', version: '0.1.0' });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-api-latency-'));
  const bare = await bareServer();
  const c = await createCoordinator({
    logger: pino({ level: 'silent' }),
    config: { env: 'development', dataDir: dir, mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1' }, credentialCost: 4 },
  });
  try {
    await c.provisionDevices(Array.from({ length: 20 }, (_, i) => `lat-${i}`), { hardwareModel: 'rpi4' });
    const targets: Target[] = [
      { name: 'bare node:http', url: `http://127.0.0.1:${(bare.address() as AddressInfo).port}/` },
      { name: 'GET /v1/health (no token)', url: `${c.httpUrl}/v1/health` },
      { name: 'GET /v1/devices?limit=20 (token)', url: `${c.httpUrl}/v1/devices?limit=20`, token: c.adminToken },
    ];
    const best = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of targets) {
        const r = await measure(t, REQUESTS);
        const prev = best.get(t.name);
        if (!prev || pct(r, 50) < pct(prev, 50)) best.set(t.name, r);
      }
    }
    const base = pct(best.get(targets[0]!.name)!, 50);
    console.log(`${REQUESTS} sequential keep-alive GETs per round, best of ${ROUNDS} rounds (µs)`);
    console.log('| target | p50 | p90 | p99 | p50 / bare |');
    console.log('|---|---|---|---|---|');
    for (const t of targets) {
      const r = best.get(t.name)!;
      console.log(`| ${t.name} | ${pct(r, 50).toFixed(0)} | ${pct(r, 90).toFixed(0)} | ${pct(r, 99).toFixed(0)} | ${(pct(r, 50) / base).toFixed(2)}× |`);
    }
  } finally {
    await c.stop();
    await new Promise<void>((resolve) => bare.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
