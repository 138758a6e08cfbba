/**
 * `fleet agent start` as a process with several broker URLs (the nodes of an embedded cluster): it
 * starts at the node its id picks, and when that node is down or refuses it, moves on to the next and
 * comes back round when the other one goes. Plain Aedes brokers on loopback stand in for the nodes.
 */
import { describe, expect, it } from 'vitest';
import { brokerUrls } from '../../agent/config.js';
import { bucketOf } from '../../protocol/bucket.js';
import { freePort } from '../support/processes.js';
import { AgentDaemon, PlainAedes, uniqueDeviceId, waitFor, writeAgentConfig, type World, worldPerTest } from './daemon-harness.js';

let world: World;
const cleanups = worldPerTest((w) => (world = w));

/** A device id whose first node, of two, is the first URL of the list. */
function idStartingAtFirstOfTwo(): string {
  for (;;) {
    const id = uniqueDeviceId();
    if (bucketOf(id) % 2 === 0) return id;
  }
}

async function broker(port = 0): Promise<PlainAedes> {
  const b = await PlainAedes.start(port);
  cleanups.push(() => b.close());
  return b;
}

function agent(files: Awaited<ReturnType<typeof writeAgentConfig>>): AgentDaemon {
  const a = AgentDaemon.start(files);
  cleanups.push(() => a.stop('SIGKILL'));
  return a;
}

describe('the agent daemon with several broker URLs', () => {
  it('connects to the second node while its own is down, and moves back when the second goes', { timeout: 60_000 }, async () => {
    const downPort = await freePort();
    const second = await broker();
    const id = idStartingAtFirstOfTwo();
    const urls = [`mqtt://127.0.0.1:${downPort}`, second.url];
    expect(brokerUrls({ url: urls }, id)).toEqual(urls);
    const files = await writeAgentConfig(world.dir, id, { url: urls }, world.trustDir);
    const daemon = agent(files);
    await waitFor(() => second.hellos(id) > 0, 'a hello on the second node');
    expect(daemon.logged('cannot reach the broker').length).toBeGreaterThan(0);

    // The first node comes up and the second goes: the agent finds its way back.
    const first = await broker(downPort);
    await second.close();
    await waitFor(() => first.hellos(id) > 0, 'a hello on the first node');
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
  });

  it('moves on to the next node when its own refuses it', { timeout: 60_000 }, async () => {
    const first = await broker();
    first.refuse = true;
    const second = await broker();
    const id = idStartingAtFirstOfTwo();
    const files = await writeAgentConfig(world.dir, id, { url: [first.url, second.url], reconnectMax: '500ms' }, world.trustDir);
    const daemon = agent(files);
    await daemon.waitForLog('the broker refused this client');
    await waitFor(() => second.hellos(id) > 0, 'a hello on the second node');
    expect(first.hellos(id)).toBe(0);
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
  });
});
