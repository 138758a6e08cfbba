/**
 * The event stream on a real HTTP server on 127.0.0.1: frames as EventSource reads them, the client
 * limit, a client that stops reading dropped at its backlog bound, a stream ended once its credentials
 * are, and stop() ending every stream.
 */
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../protocol/clock.js';
import { EventStream } from '../../coordinator/console/event-stream.js';
import { waitFor } from '../coordinator/helpers.js';
import { openSse } from './sse-client.js';

const stops: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function serve(
  options: Partial<ConstructorParameters<typeof EventStream>[0]> = {},
  stillAllowed?: () => boolean,
): Promise<{ feed: EventStream; url: string }> {
  let now = 1_000_000;
  const feed = new EventStream({ timers: systemClock, now: () => (now += 1000), ...options });
  const server: Server = createServer((req, res) => feed.handle(req, res, 'test', stillAllowed));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(() => new Promise<void>((resolve) => {
    feed.stop();
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { feed, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

describe('EventStream', () => {
  it('sends the clock at connect, then events with increasing ids, clock ticks and pings', async () => {
    const { feed, url } = await serve({ pingMs: 100, clockMs: 150 });
    const s = await openSse(url, {});
    stops.push(() => s.close());
    expect(s.response.headers.get('cache-control')).toBe('no-cache, no-transform');
    await s.waitFor((e) => e.event === 'clock', 'the first clock');
    await waitFor(() => feed.clientCount === 1, 'client registered');
    feed.publish('deployment', { id: 'd-1', phase: 'rolling' });
    feed.publish('audit', { id: 7, action: 'deployment.started', detail: { reason: 'line\nbreak' } });
    const audit = await s.waitFor((e) => e.event === 'audit', 'audit');
    expect(JSON.parse(audit.data)).toEqual({ id: 7, action: 'deployment.started', detail: { reason: 'line\nbreak' } });
    const ids = s.events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    await waitFor(() => s.comments.includes(': ping') && s.events.filter((e) => e.event === 'clock').length >= 2, 'a ping and a clock tick', 5000);
  });

  it('coalesces a device to one event per interval, the newest', async () => {
    const { feed, url } = await serve({ deviceIntervalMs: 300 });
    const s = await openSse(url, {});
    stops.push(() => s.close());
    await waitFor(() => feed.clientCount === 1, 'client registered');
    for (let i = 0; i < 50; i++) feed.publishDevice('dev-1', { deviceId: 'dev-1', n: i });
    await s.waitFor((e) => e.event === 'device' && (JSON.parse(e.data) as { n: number }).n === 49, 'the newest state');
    expect(s.events.filter((e) => e.event === 'device').map((e) => (JSON.parse(e.data) as { n: number }).n)).toEqual([0, 49]);
  });

  it('answers 503 past its client limit', async () => {
    const { url } = await serve({ maxClients: 1 });
    const first = await openSse(url, {});
    stops.push(() => first.close());
    const second = await fetch(url);
    expect(second.status).toBe(503);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('busy');
  });

  it('drops a client whose socket stops draining, and keeps serving one that reads through a burst', async () => {
    const { feed, url } = await serve({ stallMs: 1500 });
    const { port } = new URL(url);
    // A raw socket that sends its request and never reads a byte.
    const stuck = connect(Number(port), '127.0.0.1');
    stops.push(() => void stuck.destroy());
    stuck.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    stuck.pause();
    const good = await openSse(url, {});
    stops.push(() => good.close());
    await waitFor(() => feed.clientCount === 2, 'both registered');
    const blob = 'x'.repeat(4096);
    // Bursts of 800 KiB (more than the sockets buffer), with pauses in which a reader catches up.
    for (let i = 0; i < 40_000 && feed.dropped === 0; i++) {
      feed.publish('audit', { id: i, blob });
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 20));
    }
    expect(feed.dropped).toBe(1);
    expect(feed.clientCount).toBe(1);
    feed.publish('deployment', { id: 'after' });
    await good.waitFor((e) => e.event === 'deployment', 'the reading client still served');
  });

  it('ends a stream at the first ping after its credentials stop holding', async () => {
    let allowed = true;
    const { feed, url } = await serve({ pingMs: 100 }, () => allowed);
    const s = await openSse(url, {});
    stops.push(() => s.close());
    await waitFor(() => s.comments.includes(': ping'), 'a ping while allowed', 5000);
    expect(feed.clientCount).toBe(1);
    allowed = false;
    await s.ended;
    expect(feed.clientCount).toBe(0);
    // The feed rests without clients, and serves the next one.
    allowed = true;
    const next = await openSse(url, {});
    stops.push(() => next.close());
    await waitFor(() => next.comments.includes(': ping'), 'a ping for the next client', 5000);
  });

  it('stop() ends every stream and refuses new ones', async () => {
    const { feed, url } = await serve();
    const s = await openSse(url, {});
    await waitFor(() => feed.clientCount === 1, 'client registered');
    feed.stop();
    feed.stop();
    expect(feed.clientCount).toBe(0);
    expect((await fetch(url)).status).toBe(503);
    s.close();
  });
});
