/**
 * The coordinator's bounds on what one client can cost it, as pure units with a manual clock: login
 * backoff per client id and address, the fair bounded queue for password checks, per-device token
 * buckets, rate-limited log lines.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BackoffTable, LoginThrottle } from '../../coordinator/broker/login-throttle.js';
import { BusyError, FairQueue } from '../../coordinator/broker/fair-queue.js';
import { TokenBuckets } from '../../coordinator/ingest/token-buckets.js';
import { LogLimiter } from '../../coordinator/log-limiter.js';
import { DeviceIngest } from '../../coordinator/ingest/device-ingest.js';
import { BadMessages } from '../../coordinator/ingest/bad-messages.js';
import { Counters } from '../../coordinator/metrics.js';
import type { InboundMessage } from '../../coordinator/broker/transport.js';
import { deviceTopic } from '../../protocol/topics.js';
import { bucketOf } from '../../protocol/bucket.js';
import { silentLogger, telemetryPayload } from './helpers.js';

describe('login throttle', () => {
  const opts = { freeFailures: 3, baseMs: 1_000, maxMs: 8_000, forgetAfterMs: 60_000, maxEntries: 100 };

  it('allows a few failures, then blocks for doubling times up to the cap', () => {
    const t = new BackoffTable(opts);
    const blocks = [1, 2, 3, 4, 5, 6, 7].map(() => t.failure('dev-1', 0));
    expect(blocks).toEqual([0, 0, 0, 1_000, 2_000, 4_000, 8_000]);
    expect(t.blockedFor('dev-1', 7_999)).toBe(1);
    expect(t.blockedFor('dev-1', 8_000)).toBe(0);
    expect(t.blockedFor('other', 0)).toBe(0);
  });

  it('forgets a key after a quiet period, and clears it on success', () => {
    const t = new BackoffTable(opts);
    for (let i = 0; i < 4; i++) t.failure('a', 0);
    expect(t.failure('a', 61_001 + 8_000)).toBe(0); // the old failures are forgotten: this is the first again
    for (let i = 0; i < 4; i++) t.failure('b', 0);
    t.clear('b');
    expect(t.blockedFor('b', 1)).toBe(0);
  });

  it('stays bounded under invented keys', () => {
    const t = new BackoffTable({ ...opts, maxEntries: 50 });
    for (let i = 0; i < 10_000; i++) t.failure(`id-${i}`, i);
    expect(t.size).toBeLessThanOrEqual(50);
  });

  it('throttles by client id and by address; a success clears the client id only', () => {
    const th = new LoginThrottle({ perClient: opts, perAddress: { ...opts, freeFailures: 5 } });
    for (let i = 0; i < 4; i++) th.failed('dev-1', '10.0.0.1', 0);
    expect(th.check('dev-1', '10.0.0.2', 0)).toMatchObject({ throttled: true, by: 'client', retryInMs: 1_000 });
    expect(th.check('dev-2', '10.0.0.1', 0)).toEqual({ throttled: false });
    for (let i = 0; i < 2; i++) th.failed(`x-${i}`, '10.0.0.1', 0);
    expect(th.check('dev-2', '10.0.0.1', 0)).toMatchObject({ throttled: true, by: 'address' });
    th.succeeded('dev-1');
    expect(th.check('dev-1', '10.0.0.9', 0)).toEqual({ throttled: false });
  });
});

describe('fair queue for password checks', () => {
  const deferred = (): { promise: Promise<void>; resolve: () => void } => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };

  it('runs a few at a time, lanes in turn, and refuses a full lane at once', async () => {
    const q = new FairQueue({ concurrency: 1, maxPerLane: 2, maxQueued: 10 });
    const order: string[] = [];
    const gate = deferred();
    const job = (name: string, wait?: Promise<void>) => () => {
      order.push(name);
      return wait ?? Promise.resolve();
    };
    const running = q.run('attacker', job('a0', gate.promise));
    const a1 = q.run('attacker', job('a1'));
    const a2 = q.run('attacker', job('a2'));
    await expect(q.run('attacker', job('a3'))).rejects.toBeInstanceOf(BusyError);
    const l0 = q.run('legit', job('l0'));
    expect(q.waiting).toBe(3);
    gate.resolve();
    await Promise.all([running, a1, a2, l0]);
    // The legitimate lane's check runs right after the one in progress, not after the attacker's queue.
    expect(order).toEqual(['a0', 'a1', 'l0', 'a2']);
  });

  it('never refuses unbounded (operator) work, and bounds the total', async () => {
    const q = new FairQueue({ concurrency: 1, maxPerLane: 1, maxQueued: 2 });
    const gate = deferred();
    const first = q.run('op', () => gate.promise, false);
    const more = [1, 2, 3].map(() => q.run('op', () => Promise.resolve(), false));
    await expect(q.run('x', () => Promise.resolve())).rejects.toBeInstanceOf(BusyError);
    gate.resolve();
    await Promise.all([first, ...more]);
    expect(q.waiting).toBe(0);
  });
});

describe('token buckets per device', () => {
  it('passes a burst, then the sustained rate, per key', () => {
    let now = 0;
    const b = new TokenBuckets({ perSecond: 2, burst: 5 }, () => now);
    const passed = Array.from({ length: 8 }, () => b.take('flooder')).filter(Boolean).length;
    expect(passed).toBe(5);
    expect(b.take('quiet')).toBe(true);
    now = 1_000;
    expect([b.take('flooder'), b.take('flooder'), b.take('flooder')]).toEqual([true, true, false]);
  });

  it('stays bounded under invented keys', () => {
    let now = 0;
    const b = new TokenBuckets({ perSecond: 1, burst: 1 }, () => now, 100);
    for (let i = 0; i < 5_000; i++) {
      now += 1;
      b.take(`id-${i}`);
    }
    expect(b.size).toBeLessThanOrEqual(100);
  });
});

describe('rate-limited log lines', () => {
  it('one line per key per interval, saying how many were held back', () => {
    let now = 0;
    const l = new LogLimiter(10_000, () => now);
    expect(l.admit('a')).toBe(0);
    expect([l.admit('a'), l.admit('a'), l.admit('b')]).toEqual([undefined, undefined, 0]);
    now = 10_000;
    expect(l.admit('a')).toBe(2);
  });
});

describe('ingest: per-device buckets before parsing', () => {
  it('sheds a device past its telemetry rate and, separately, past its looser control rate; others pass', () => {
    let now = 0;
    const counters = new Counters();
    const shed: string[] = [];
    const got = { telemetry: 0, hello: 0, status: 0 };
    const ingest = new DeviceIngest({
      handlers: {
        hello: () => void got.hello++,
        status: () => void got.status++,
        telemetry: () => void got.telemetry++,
        presence: () => undefined,
      },
      counters,
      logger: silentLogger,
      bad: new BadMessages(counters, silentLogger),
      limits: { telemetry: { perSecond: 1, burst: 3 }, control: { perSecond: 1, burst: 5 }, now: () => now, onShed: (id, ch) => shed.push(`${id}:${ch}`) },
    });
    let acks = 0;
    const msg = (deviceId: string, channel: 'telemetry' | 'hello' | 'status', payload: Buffer): InboundMessage => ({
      topic: deviceTopic(deviceId, channel), payload, clientDeviceId: deviceId, ack: () => void acks++,
    });
    const hello = (id: string): Buffer => Buffer.from(JSON.stringify({ v: 1, kind: 'hello', deviceId: id, hardwareModel: 'rpi4', firmwareVersion: '1.0.0', activeSlot: 'A', agentVersion: 't', bucket: bucketOf(id), tags: [], securityFloor: 0, at: 1 }));
    for (let i = 0; i < 10; i++) ingest.handle(msg('flood', 'telemetry', telemetryPayload('flood', i)));
    for (let i = 0; i < 10; i++) ingest.handle(msg('flood', 'hello', hello('flood')));
    for (let i = 0; i < 3; i++) ingest.handle(msg('calm', 'telemetry', telemetryPayload('calm', i)));
    expect(got).toEqual({ telemetry: 3 + 3, hello: 5, status: 0 });
    expect(counters.get('ingest.shed.telemetry')).toBe(7);
    expect(counters.get('ingest.shed.control')).toBe(5);
    expect(new Set(shed)).toEqual(new Set(['flood:telemetry', 'flood:control']));
    // Every message is acknowledged, shed or not: a QoS 1 sender is never stuck.
    expect(acks).toBe(23);
    now = 2_000;
    ingest.handle(msg('flood', 'telemetry', telemetryPayload('flood', 11)));
    expect(got.telemetry).toBe(7);
  });
});

describe('ingest: a status the handler could not store', () => {
  it('is acknowledged with the error (no PUBACK), whether the handler throws or rejects', async () => {
    const payload = readFileSync(new URL('../fixtures/messages/v1/status-failed.json', import.meta.url));
    const id = (JSON.parse(payload.toString()) as { deviceId: string }).deviceId;
    const ackOf = (status: () => Promise<void> | void): Promise<Error | undefined> => {
      const counters = new Counters();
      const handlers = { hello: () => undefined, status, telemetry: () => undefined, presence: () => undefined };
      const ingest = new DeviceIngest({ handlers, counters, logger: silentLogger, bad: new BadMessages(counters, silentLogger) });
      return new Promise((resolve) => ingest.handle({ topic: deviceTopic(id, 'status'), payload, clientDeviceId: id, ack: resolve }));
    };
    const thrown = await ackOf(() => {
      throw new Error('disk I/O error');
    });
    const rejected = await ackOf(() => Promise.reject(new Error('disk I/O error')));
    const stored = await ackOf(() => undefined);
    expect([thrown?.message, rejected?.message, stored]).toEqual(['disk I/O error', 'disk I/O error', undefined]);
  });
});

describe('bad-message accounting: one account for the edge and the telemetry thread', () => {
  it('counts what the edge refuses and what the telemetry thread could not parse under the same names', () => {
    const counters = new Counters();
    const bad = new BadMessages(counters, silentLogger);
    const ingest = new DeviceIngest({ handlers: { hello: () => undefined, status: () => undefined, telemetry: () => undefined, presence: () => undefined }, counters, logger: silentLogger, bad });
    ingest.handle({ topic: deviceTopic('pi-1', 'hello'), payload: Buffer.from('{'), clientDeviceId: 'pi-1', ack: () => undefined });
    // A batch with 25 unparsable messages, 2 of them described (the thread describes a bounded number).
    bad.telemetry([{ deviceId: 'pi-2', reason: 'not JSON' }, { deviceId: 'pi-3', reason: 'not JSON' }], 25);
    expect(counters.snapshot()).toMatchObject({ 'ingest.bad': 26, 'ingest.bad.hello': 1, 'ingest.bad.telemetry': 25 });
  });
});
