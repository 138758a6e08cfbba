/**
 * The indexed retained store answers a SUBSCRIBE exactly as Aedes's own memory persistence does: the
 * same retained messages for exact filters, wildcard filters and mixes, and none once a topic is
 * cleared. Two real Aedes brokers on 127.0.0.1 port 0 (one stock, one indexed), real mqtt.js clients.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { Aedes } from 'aedes';
import { indexedMemoryPersistence, isExactFilter } from '../../coordinator/broker/retained-index.js';
import { uniqueId } from './helpers.js';

interface Running {
  url: string;
  close(): Promise<void>;
}

const running: Running[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

async function broker(indexed: boolean): Promise<Running> {
  const aedes = await Aedes.createBroker(indexed ? { persistence: indexedMemoryPersistence() } : {});
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const r = {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  running.push(r);
  return r;
}

/** Publishes retained messages (an empty payload clears) and waits for the broker to take each. */
async function retain(url: string, messages: readonly [string, string][]): Promise<void> {
  const c = await mqtt.connectAsync(url, { clientId: uniqueId('pub'), reconnectPeriod: 0 });
  for (const [topic, payload] of messages) await c.publishAsync(topic, payload, { qos: 1, retain: true });
  await c.endAsync();
}

/** The retained messages a fresh client gets for `filters` (topic → payload), once they stop coming. */
async function retainedFor(url: string, filters: readonly string[], expected: number): Promise<Map<string, string>> {
  const c = await mqtt.connectAsync(url, { clientId: uniqueId('sub'), reconnectPeriod: 0, clean: true });
  const got = new Map<string, string>();
  const all = new Promise<void>((resolve) => {
    c.on('message', (topic, payload, packet) => {
      if (packet.retain) got.set(topic, payload.toString());
      if (got.size >= expected) resolve();
    });
  });
  try {
    await c.subscribeAsync([...filters], { qos: 1 });
    if (expected > 0) await all;
    // A marker published after the SUBSCRIBE arrives after every retained message the broker sends for it.
    const marker = `marker/${uniqueId('m')}`;
    const seen = new Promise<void>((resolve) => c.on('message', (topic) => topic === marker && resolve()));
    await c.subscribeAsync(marker, { qos: 1 });
    await c.publishAsync(marker, 'x', { qos: 1 });
    await seen;
    return got;
  } finally {
    await c.endAsync(true);
  }
}

const TOPICS: [string, string][] = [
  ['fleet/rollout/rpi4/0', 'a'],
  ['fleet/rollout/rpi4/1', 'b'],
  ['fleet/rollout/rpi4/2', 'c'],
  ['fleet/rollout/x86/1', 'd'],
  ['fleet/flags/rpi4', 'e'],
];

describe('indexed retained store', () => {
  it('tells exact filters from wildcard ones', () => {
    expect(isExactFilter('fleet/rollout/rpi4/7')).toBe(true);
    expect(isExactFilter('fleet/rollout/+/7')).toBe(false);
    expect(isExactFilter('fleet/#')).toBe(false);
  });

  it.each([
    { filters: ['fleet/rollout/rpi4/1'], expected: 1 },
    { filters: ['fleet/rollout/rpi4/9'], expected: 0 },
    { filters: ['fleet/rollout/rpi4/1', 'fleet/flags/rpi4', 'fleet/rollout/x86/1'], expected: 3 },
    { filters: ['fleet/rollout/+/1'], expected: 2 },
    { filters: ['fleet/rollout/rpi4/0', 'fleet/rollout/#'], expected: 4 },
    { filters: ['#'], expected: 5 },
  ])('answers $filters as the memory persistence does', async ({ filters, expected }) => {
    const [stock, indexed] = await Promise.all([broker(false), broker(true)]);
    await Promise.all([retain(stock.url, TOPICS), retain(indexed.url, TOPICS)]);
    const want = await retainedFor(stock.url, filters, expected);
    expect(want.size).toBe(expected);
    expect(await retainedFor(indexed.url, filters, expected)).toEqual(want);
  });

  it('forgets a cleared topic and keeps the latest payload', async () => {
    const b = await broker(true);
    await retain(b.url, TOPICS);
    await retain(b.url, [
      ['fleet/rollout/rpi4/1', ''],
      ['fleet/rollout/rpi4/2', 'c2'],
    ]);
    const got = await retainedFor(b.url, ['fleet/rollout/rpi4/1', 'fleet/rollout/rpi4/2'], 1);
    expect([...got]).toEqual([['fleet/rollout/rpi4/2', 'c2']]);
    expect([...(await retainedFor(b.url, ['fleet/rollout/rpi4/+'], 2))].sort()).toEqual([
      ['fleet/rollout/rpi4/0', 'a'],
      ['fleet/rollout/rpi4/2', 'c2'],
    ]);
  });
});
