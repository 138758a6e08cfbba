/**
 * The parts that bound downloads, alone: slots (global and per device, idempotent release), the
 * transfer watch on a manual clock (idle, slow, a slow start that catches up), and download
 * credentials (Basic parsing, remembered refusals, a bound on uncached checks).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../support/manual-clock.js';
import { DownloadSlots } from '../../coordinator/artifacts/download-slots.js';
import { TransferWatch, type DropReason } from '../../coordinator/artifacts/transfer-watch.js';
import { DownloadAuth, parseBasic } from '../../coordinator/artifacts/download-auth.js';
import { loadConfig } from '../../coordinator/config.js';

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('download slots', () => {
  it('bounds each device and everyone, and a release counts once', () => {
    const slots = new DownloadSlots({ global: 3, perDevice: 2 });
    const a1 = slots.acquire('a');
    const a2 = slots.acquire('a');
    expect(slots.acquire('a')).toEqual({ ok: false, scope: 'device' });
    const anon = slots.acquire(undefined);
    expect(slots.acquire('b')).toEqual({ ok: false, scope: 'global' });
    expect([a1.ok, a2.ok, anon.ok]).toEqual([true, true, true]);
    if (!a1.ok || !anon.ok) throw new Error('unreachable');
    a1.release();
    a1.release();
    expect(slots.activeCount).toBe(2);
    expect(slots.activeFor('a')).toBe(1);
    expect(slots.acquire('b').ok).toBe(true);
    anon.release();
    expect(slots.activeCount).toBe(2);
  });

  it('queues beyond the global bound, first come first served, and refuses past the queue', () => {
    const slots = new DownloadSlots({ global: 1, perDevice: 2, queue: 2 });
    const granted: string[] = [];
    const releases = new Map<string, () => void>();
    const ask = (id: string) =>
      slots.request(id, (release) => {
        granted.push(id);
        releases.set(id, release);
      });
    const first = ask('a');
    if (first.kind !== 'granted') throw new Error('the first request must get the free slot');
    expect(ask('b').kind).toBe('queued');
    expect(ask('c').kind).toBe('queued');
    expect(ask('d')).toEqual({ kind: 'refused', scope: 'global' });
    expect(slots.queuedCount).toBe(2);
    first.release();
    first.release();
    expect(granted).toEqual(['b']);
    expect(slots.activeCount).toBe(1);
    // A free slot is never taken past the queue.
    expect(ask('e').kind).toBe('queued');
    expect(slots.acquire('f')).toEqual({ ok: false, scope: 'global' });
    releases.get('b')!();
    releases.get('c')!();
    expect(granted).toEqual(['b', 'c', 'e']);
    releases.get('e')!();
    expect([slots.activeCount, slots.queuedCount]).toEqual([0, 0]);
  });

  it('a cancelled place is given up at once and never granted; queued places count per device', () => {
    const slots = new DownloadSlots({ global: 1, perDevice: 2, queue: 10 });
    const granted: string[] = [];
    const ask = (id: string, tag = id) => slots.request(id, () => granted.push(tag));
    const held = ask('a');
    const b = ask('b');
    ask('c');
    // Device a holds one slot and one place: its third request is refused whatever the queue has.
    expect(ask('a', 'a2').kind).toBe('queued');
    expect(ask('a', 'a3')).toEqual({ kind: 'refused', scope: 'device' });
    if (held.kind !== 'granted' || b.kind !== 'queued') throw new Error('unreachable');
    b.cancel();
    b.cancel();
    expect(slots.queuedCount).toBe(2);
    expect(slots.activeFor('b')).toBe(0);
    held.release();
    expect(granted).toEqual(['c']);
    expect(slots.activeFor('a')).toBe(1);
  });

  it('sweeps cancelled places that churn behind a long-waiting head', () => {
    const slots = new DownloadSlots({ global: 1, perDevice: 1, queue: 4 });
    const held = slots.request('holder', () => undefined);
    slots.request('head', () => undefined);
    for (let i = 0; i < 10_000; i++) {
      const r = slots.request(`churn-${i}`, () => undefined);
      if (r.kind !== 'queued') throw new Error(`request ${i} was ${r.kind}`);
      r.cancel();
    }
    expect(slots.queuedCount).toBe(1);
    expect((slots as unknown as { waiting: unknown[] }).waiting.length).toBeLessThan(100);
    if (held.kind === 'granted') held.release();
    expect([slots.activeCount, slots.queuedCount]).toEqual([1, 0]);
  });
});

/** Lets piped chunks move through the streams (they flow on later turns of the event loop). */
const flowed = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('transfer watch', () => {
  const limits = { idleTimeoutMs: 1000, minBytesPerSecond: 1000, rateWindowMs: 4000 };

  function rig(): { clock: ManualClock; watch: TransferWatch; push: (n: number) => void; pending: { n: number }; drops: DropReason[] } {
    const clock = new ManualClock(0);
    const pending = { n: 0 };
    const drops: DropReason[] = [];
    const watch = new TransferWatch(clock, limits, () => pending.n, (why) => drops.push(why));
    watch.on('error', () => undefined);
    watch.pipe(new PassThrough()).resume();
    return { clock, watch, pending, drops, push: (n) => watch.write(Buffer.alloc(n)) };
  }

  it.each([
    // [what, steps of (ms, bytes delivered by then), the drop expected]
    ['a client that reads steadily is kept', [[250, 500], [500, 1000], [750, 1500], [1000, 2000], [2000, 4000], [3000, 6000], [4000, 8000], [5000, 10000]], undefined],
    ['a client that stops reading is dropped as idle', [[250, 5000], [500, 5000], [1000, 5000], [1500, 5000]], 'idle'],
    ['a client slower than the minimum over a window is dropped as slow', [[250, 100], [1000, 800], [2000, 1600], [3000, 2400], [4000, 3200]], 'slow'],
    ['a fast first burst then a crawl is dropped at the next window', [[250, 100_000], [1000, 100_500], [2000, 101_000], [3000, 101_500], [4000, 102_000], [5000, 102_500], [6000, 103_000], [7000, 103_500], [8000, 104_000]], 'slow'],
  ] as const)('%s', async (_what, steps, expected) => {
    const { clock, watch, push, drops } = rig();
    let delivered = 0;
    let now = 0;
    for (const [at, total] of steps) {
      if (total > delivered) push(total - delivered);
      delivered = total;
      await flowed();
      clock.advance(at - now);
      now = at;
    }
    expect(drops).toEqual(expected ? [expected] : []);
    expect(watch.dropped).toBe(expected);
    watch.stop();
  });

  it('counts bytes still in the socket buffer as not delivered', async () => {
    const { clock, push, pending, drops } = rig();
    push(10_000);
    await flowed();
    pending.n = 10_000; // passed on, but the kernel took none of it
    clock.advance(1500);
    expect(drops).toEqual(['idle']);
  });

  it('stops checking once stopped', () => {
    const { clock, watch, drops } = rig();
    watch.stop();
    clock.advance(60_000);
    expect(drops).toEqual([]);
  });
});

describe('download credentials', () => {
  it.each([
    [basic('dev-1', 's3cret'), { user: 'dev-1', password: 's3cret' }],
    [basic('dev-1', 'a:b'), { user: 'dev-1', password: 'a:b' }],
    [`basic ${Buffer.from('x:y').toString('base64')}`, { user: 'x', password: 'y' }],
    [basic('', 'pw'), undefined],
    ['Bearer abc', undefined],
    ['Basic !!!', undefined],
  ])('parses %s', (header, want) => {
    expect(parseBasic(header)).toEqual(want);
  });

  it('verifies, remembers refusals for a minute, and bounds the checks not answered from cache', async () => {
    let now = 0;
    let calls = 0;
    const waiting: (() => void)[] = [];
    const auth = new DownloadAuth({
      allowAnonymous: false,
      now: () => now,
      maxPendingChecks: 2,
      verify: async (id, secret) => {
        calls++;
        if (secret === 'slow') await new Promise<void>((resolve) => waiting.push(resolve));
        return id === 'dev-1' && secret === 'good';
      },
    });
    expect(await auth.authenticate(undefined, 'a')).toEqual({ ok: false, status: 401, why: 'missing' });
    expect(await auth.authenticate('Basic bm9jb2xvbg==', 'a')).toEqual({ ok: false, status: 401, why: 'malformed' });
    expect(await auth.authenticate(basic('dev-1', 'good'), 'a')).toEqual({ ok: true, deviceId: 'dev-1' });
    expect(await auth.authenticate(basic('dev-1', 'bad'), 'a')).toMatchObject({ ok: false, why: 'refused', deviceId: 'dev-1' });
    const before = calls;
    expect(await auth.authenticate(basic('dev-1', 'bad'), 'a')).toMatchObject({ why: 'refused' });
    expect(calls).toBe(before); // remembered
    now += 61_000;
    await auth.authenticate(basic('dev-1', 'bad'), 'a');
    expect(calls).toBe(before + 1); // forgotten after a minute

    const slow = [auth.authenticate(basic('dev-2', 'slow'), 'a'), auth.authenticate(basic('dev-3', 'slow'), 'a')];
    expect(await auth.authenticate(basic('dev-1', 'good'), 'a')).toEqual({ ok: false, status: 503, why: 'busy', deviceId: 'dev-1' });
    for (const w of waiting) w();
    await Promise.all(slow);
    expect(await auth.authenticate(basic('dev-1', 'good'), 'a')).toEqual({ ok: true, deviceId: 'dev-1' });
  });

  it('serves requests without credentials as anonymous when anonymous devices are allowed, still checking given ones', async () => {
    const auth = new DownloadAuth({ allowAnonymous: true, now: () => 0, verify: () => Promise.resolve(false) });
    expect(await auth.authenticate(undefined, 'a')).toEqual({ ok: true, deviceId: undefined });
    expect(await auth.authenticate(basic('dev-1', 'x'), 'a')).toMatchObject({ ok: false, why: 'refused' });
  });
});

describe('download limits in the configuration', () => {
  it('come from FLEET_* variables, with defaults', () => {
    expect(loadConfig({ dataDir: '/tmp/x' }).http).toMatchObject({
      maxConcurrentDownloads: 64,
      maxDownloadsPerDevice: 2,
      downloadIdleTimeoutMs: 30_000,
      downloadMinBytesPerSecond: 1024,
      downloadRateWindowMs: 60_000,
    });
    const env = {
      FLEET_MAX_DOWNLOADS: '10',
      FLEET_MAX_DOWNLOADS_PER_DEVICE: '1',
      FLEET_DOWNLOAD_IDLE_TIMEOUT_MS: '5000',
      FLEET_DOWNLOAD_MIN_BYTES_PER_S: '0',
      FLEET_DOWNLOAD_RATE_WINDOW_MS: '9000',
      FLEET_HTTP_PORT: 'auto',
    };
    expect(loadConfig({ dataDir: '/tmp/x' }, env).http).toMatchObject({
      port: 'auto',
      maxConcurrentDownloads: 10,
      maxDownloadsPerDevice: 1,
      downloadIdleTimeoutMs: 5000,
      downloadMinBytesPerSecond: 0,
      downloadRateWindowMs: 9000,
    });
    expect(() => loadConfig({ dataDir: '/tmp/x' }, { FLEET_MAX_DOWNLOADS_PER_DEVICE: 'many' })).toThrow(/maxDownloadsPerDevice/);
  });
});
