/**
 * The webhook body's golden fixtures; webhook delivery against a real HTTP receiver on 127.0.0.1, with
 * a real store (SQLite and PostgreSQL alike) and a manual clock for the backoff: every delivery signed and verified by the receiver, retries after 500s at
 * growing intervals, given up after the attempt limit, timeouts, pending deliveries surviving a
 * restart, every attempt recorded. Then a real coordinator with real agents: a rollout and its
 * rollback reach the receiver as gate.decided, deployment.completed, deployment.aborted,
 * rollback.started and rollback.finished.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WEBHOOK_EVENT_TYPES, WebhookEventSchema } from '../../protocol/webhooks.js';
import { repoRoot } from '../support/processes.js';
import { ManualClock } from '../support/manual-clock.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { STORE_KINDS, openTestStore, type StoreKind } from '../support/postgres.js';
import { WebhookStore } from '../../coordinator/webhooks/webhook-store.js';
import { WebhookDispatcher, retryDelay, type DeliveryLimits } from '../../coordinator/webhooks/webhook-dispatcher.js';
import { WebhookService, checkWebhookUrl, maskUrl } from '../../coordinator/webhooks/webhook-service.js';
import { signWebhook, verifyWebhook } from '../../coordinator/webhooks/webhook-signature.js';
import type { Coordinator } from '../../coordinator/index.js';
import { api, silentLogger, startCoordinator, tempDir, waitFor } from './helpers.js';
import { fastWaves, startFleet, uploadImage } from './fleet-harness.js';
import { startReceiver, type Receiver } from './webhook-receiver.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

const SECRET = 'webhook-test-secret-0123456789';
const LIMITS: DeliveryLimits = { maxAttempts: 4, backoffMs: 1_000, backoffMaxMs: 60_000, timeoutMs: 2_000, concurrency: 2 };

async function rig(kind: StoreKind, limits: DeliveryLimits = LIMITS, db?: Sql): Promise<{ db: Sql; clock: ManualClock; store: WebhookStore; dispatcher: WebhookDispatcher; service: WebhookService; receiver: Receiver; audits: string[] }> {
  const database = db ?? (await openTestStore(kind));
  const clock = new ManualClock(1_800_000_000_000);
  const store = new WebhookStore(database);
  // random = 1: no jitter taken off, so the waits are exactly the backoff.
  const dispatcher = new WebhookDispatcher({ store, timers: clock, logger: silentLogger, limits, random: () => 1 });
  stops.push(() => dispatcher.stop());
  const audits: string[] = [];
  const service = new WebhookService({ store, dispatcher, env: 'development', now: () => clock.now(), audit: (actor, action) => void audits.push(`${actor} ${action}`), logger: silentLogger });
  const receiver = await startReceiver(() => SECRET, () => clock.now());
  stops.push(() => receiver.close());
  return { db: database, clock, store, dispatcher, service, receiver, audits };
}

const aborted = (id: string, at: number) => ({ at, actor: 'operator', action: 'deployment.aborted', deploymentId: id, detail: { reason: 'bad canary', rollback: true } });

describe('webhook events', () => {
  it('parses the golden v1 body of every event type', () => {
    const dir = join(repoRoot, 'test/fixtures/webhooks/v1');
    const types = readdirSync(dir).map((f) => {
      const parsed = WebhookEventSchema.safeParse(JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown);
      expect(parsed.success, `${f}: ${parsed.success ? '' : parsed.error.message}`).toBe(true);
      return parsed.success ? parsed.data.type : '';
    });
    expect(types.sort()).toEqual([...WEBHOOK_EVENT_TYPES].sort());
  });
});

describe('webhook signatures', () => {
  it('verifies what it signed, and refuses a changed body, another secret, an old or future timestamp', () => {
    const body = '{"v":1}';
    const sig = signWebhook(SECRET, 1_000_000, body);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    const check = (o: Partial<Parameters<typeof verifyWebhook>[0]>) => verifyWebhook({ secret: SECRET, body, signature: sig, timestamp: '1000000', nowS: 1_000_010, ...o });
    expect(check({})).toEqual({ ok: true });
    expect(check({ body: '{"v":2}' })).toEqual({ ok: false, reason: 'mismatch' });
    expect(check({ secret: 'another-secret-0123456789' })).toEqual({ ok: false, reason: 'mismatch' });
    expect(check({ timestamp: '1000001' })).toEqual({ ok: false, reason: 'mismatch' });
    expect(check({ nowS: 1_000_000 + 301 })).toEqual({ ok: false, reason: 'too-old' });
    expect(check({ nowS: 1_000_000 - 301 })).toEqual({ ok: false, reason: 'in-the-future' });
    expect(check({ signature: undefined })).toEqual({ ok: false, reason: 'missing' });
    expect(check({ signature: 'md5=abc' })).toEqual({ ok: false, reason: 'malformed' });
  });

  it('backs off exponentially with jitter, capped, and honours Retry-After', () => {
    const l = { backoffMs: 1_000, backoffMaxMs: 10_000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelay(n, l, () => 1))).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
    expect([1, 2, 3].map((n) => retryDelay(n, l, () => 0))).toEqual([500, 1_000, 2_000]);
    expect(retryDelay(1, l, () => 0, 7_000)).toBe(7_000);
    expect(retryDelay(1, l, () => 0, 99_000)).toBe(10_000);
  });

  it('takes http(s) URLs, https only outside development, and masks credentials', () => {
    expect(checkWebhookUrl('http://127.0.0.1:9/x', 'development')).toBe('http://127.0.0.1:9/x');
    expect(() => checkWebhookUrl('ftp://example.com/x', 'development')).toThrow(/http:\/\/ or https:\/\//);
    expect(() => checkWebhookUrl('not a url', 'development')).toThrow(/is not a URL/);
    expect(() => checkWebhookUrl('http://alerts.example.com/x', 'production')).toThrow(/production sends webhooks over https only/);
    expect(() => checkWebhookUrl('http://alerts.example.com/x', 'staging')).toThrow(/https only/);
    expect(checkWebhookUrl('https://alerts.example.com/x', 'production')).toBe('https://alerts.example.com/x');
    expect(maskUrl('https://user:pw@alerts.example.com/x')).toBe('https://***@alerts.example.com/x');
  });
});

describe.each(STORE_KINDS)('webhook delivery on %s', (kind) => {
  it('signs each delivery; retries after 500s at growing intervals; records every attempt', async () => {
    const { clock, store, dispatcher, service, receiver, audits } = await rig(kind);
    const { webhook } = await service.add({ url: receiver.url, secret: SECRET }, 'alice');
    expect(audits).toEqual(['alice webhook.added']);
    dispatcher.start();
    let calls = 0;
    receiver.answer = () => (++calls <= 2 ? 500 : 200);
    const start = clock.now();
    service.onAudit(aborted('dep-1', start));
    // Not subscribed: a wave start is no webhook event.
    service.onAudit({ at: start, actor: 'engine', action: 'deployment.wave-started', deploymentId: 'dep-1', detail: {} });

    await waitFor(() => receiver.received.length === 1, 'first attempt');
    await dispatcher.idle();
    clock.advance(999);
    await dispatcher.idle();
    expect(receiver.received).toHaveLength(1);
    clock.advance(1);
    await waitFor(() => receiver.received.length === 2, 'second attempt, 1 s later');
    await dispatcher.idle();
    clock.advance(1_999);
    await dispatcher.idle();
    expect(receiver.received).toHaveLength(2);
    clock.advance(1);
    await waitFor(() => receiver.received.length === 3, 'third attempt, 2 s after the second');
    await dispatcher.idle();

    for (const r of receiver.received) {
      expect(r.signature).toEqual({ ok: true });
      expect(r.headers['x-fleet-event']).toBe('deployment.aborted');
      expect(r.event).toMatchObject({ v: 1, type: 'deployment.aborted', deploymentId: 'dep-1', actor: 'operator', reason: 'bad canary', rollback: true });
    }
    // The same bytes and delivery id every time; the event id lets a receiver drop duplicates.
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
    expect(new Set(receiver.received.map((r) => r.headers['x-fleet-delivery'])).size).toBe(1);

    const [d] = await store.recent(webhook.id, 10);
    expect(d).toMatchObject({ status: 'delivered', attempts: 3, lastStatus: 200, lastError: null, nextAttemptAt: null });
    const attempts = await store.attempts(d!.id);
    expect(attempts.map((a) => [a.attempt, a.status, a.at - start])).toEqual([[1, 500, 0], [2, 500, 1_000], [3, 200, 3_000]]);
    expect(attempts[0]!.error).toBe('HTTP 500: receiver says 500');
    expect((await service.list())[0]).toMatchObject({ id: webhook.id, deliveries: { delivered: 1, pending: 0, failed: 0 }, lastDelivery: { status: 'delivered', attempts: 3 } });
  });

  it('gives up after the attempt limit, and counts a receiver that never answers as a failed attempt', async () => {
    const { clock, store, dispatcher, service, receiver } = await rig(kind, { ...LIMITS, maxAttempts: 3 });
    const { webhook } = await service.add({ url: receiver.url, secret: SECRET, events: ['deployment.aborted'] }, 'alice');
    dispatcher.start();
    let calls = 0;
    receiver.answer = () => (++calls === 2 ? 'hang' : 503);
    service.onAudit(aborted('dep-2', clock.now()));
    await waitFor(() => receiver.received.length === 1, 'first attempt');
    await dispatcher.idle();
    clock.advance(1_000);
    await waitFor(() => receiver.received.length === 2, 'second attempt (the receiver hangs)');
    clock.advance(LIMITS.timeoutMs);
    await dispatcher.idle();
    clock.advance(2_000);
    await waitFor(() => receiver.received.length === 3, 'third attempt');
    await dispatcher.idle();
    clock.advance(3_600_000);
    await dispatcher.idle();
    expect(receiver.received).toHaveLength(3);
    const [d] = await store.recent(webhook.id, 1);
    expect(d).toMatchObject({ status: 'failed', attempts: 3, lastStatus: 503, nextAttemptAt: null });
    expect((await store.attempts(d!.id)).map((a) => a.error)).toEqual(['HTTP 503: receiver says 503', `no answer within ${LIMITS.timeoutMs} ms`, 'HTTP 503: receiver says 503']);
  });

  it('keeps a pending delivery across a restart and sends it after the next start', async () => {
    const first = await rig(kind);
    const { webhook } = await first.service.add({ url: first.receiver.url, secret: SECRET }, 'alice');
    first.receiver.answer = () => 500;
    first.dispatcher.start();
    first.service.onAudit(aborted('dep-3', first.clock.now()));
    await waitFor(() => first.receiver.received.length === 1, 'first attempt');
    await first.dispatcher.idle();
    await first.dispatcher.stop();
    expect((await first.store.recent(webhook.id, 1))[0]).toMatchObject({ status: 'pending', attempts: 1 });

    const second = await rig(kind, LIMITS, first.db);
    await second.service.add({ url: second.receiver.url, secret: SECRET, events: ['rollback.started'] }, 'bob');
    first.receiver.answer = () => 200;
    second.clock.advance(1_000);
    second.dispatcher.start();
    await waitFor(() => first.receiver.received.length === 2, 'sent again after the restart');
    await second.dispatcher.idle();
    expect((await second.store.recent(webhook.id, 1))[0]).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(second.receiver.received).toHaveLength(0);
  });

  it('sends a delivery once when two coordinators share the store', async () => {
    const first = await rig(kind);
    const second = await rig(kind, LIMITS, first.db);
    const { webhook } = await first.service.add({ url: first.receiver.url, secret: SECRET }, 'alice');
    for (let i = 0; i < 4; i++) first.service.onAudit(aborted(`dep-${i}`, first.clock.now()));
    await first.service.settled();
    first.dispatcher.start();
    second.dispatcher.start();
    await waitFor(() => first.receiver.received.length >= 4, 'every event delivered');
    await Promise.all([first.dispatcher.idle(), second.dispatcher.idle()]);
    expect(first.receiver.received.map((r) => r.headers['x-fleet-delivery']).sort()).toEqual((await first.store.recent(webhook.id, 10)).map((d) => String(d.id)).sort());
    expect(await first.store.counts(webhook.id)).toEqual({ pending: 0, delivered: 4, failed: 0 });
  });

  it('tests a webhook once, now, and says what the receiver answered', async () => {
    const { dispatcher, service, receiver, audits, store } = await rig(kind);
    const { webhook } = await service.add({ url: receiver.url, secret: SECRET }, 'alice');
    dispatcher.start();
    const ok = await service.test(webhook.id, 'alice');
    expect(ok).toMatchObject({ delivered: true, status: 200, state: 'delivered', attempt: 1 });
    expect(receiver.received[0]!.event).toMatchObject({ type: 'webhook.test', webhookId: webhook.id });
    receiver.answer = () => 500;
    const bad = await service.test(webhook.id, 'alice');
    expect(bad).toMatchObject({ delivered: false, status: 500, state: 'failed', error: 'HTTP 500: receiver says 500' });
    expect(audits).toEqual(['alice webhook.added', 'alice webhook.tested', 'alice webhook.tested']);
    await expect(service.remove('wh-none', 'alice')).rejects.toThrow(/no webhook "wh-none"/);
    await service.remove(webhook.id, 'alice');
    expect(await service.list()).toEqual([]);
    expect(await store.webhooks()).toEqual([]);
  });
});

describe('webhooks from a running coordinator', () => {
  it('tells a receiver of the gate decisions, the completion and the rollback of a real rollout', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    let secret = '';
    const receiver = await startReceiver(() => secret);
    stops.push(() => receiver.close());
    const c: Coordinator = await startCoordinator(dir, { config: { webhooks: { maxAttempts: 5, backoffMs: 50, backoffMaxMs: 500, timeoutMs: 5_000, concurrency: 4 } } });
    stops.push(() => c.stop());
    const fleet = await startFleet(c, dir, 4);
    stops.push(() => fleet.stop());

    const added = await api<{ webhook: { id: string; events: string[] }; secret: string }>(c, 'POST', '/v1/webhooks', { url: receiver.url });
    expect(added.status).toBe(201);
    secret = added.body.secret;
    expect(secret).toMatch(/^whsec_/);
    expect(added.body.webhook.events).toEqual(['gate.decided', 'deployment.aborted', 'deployment.completed', 'rollback.started', 'rollback.finished']);
    // The first delivery of the gate decision fails: it comes again after the backoff.
    let failedOnce = false;
    receiver.answer = (r) => (r.event?.type === 'gate.decided' && !failedOnce ? ((failedOnce = true), 500) : 200);

    await uploadImage(c, '1.1.0');
    const d = await c.createDeployment({ firmwareVersion: '1.1.0', target: { hardwareModels: ['rpi4'] }, waves: fastWaves([50, 100]), gatePolicy: { minReportingDevices: 1 } });
    await waitFor(async () => (await c.deployment(d.id))?.phase === 'completed', 'completed', 60_000, 50);
    await c.act(d.id, { type: 'rollback', reason: 'webhook test' });
    await waitFor(async () => (await c.deployment(d.id))?.phase === 'rolled-back', 'rolled back', 60_000, 50);
    const types = (): string[] => [...new Set(receiver.received.filter((r) => r.event !== undefined).map((r) => r.event!.type))];
    // A rollback goes through the abort path: deployment.aborted (with rollback: true) comes too.
    await waitFor(() => types().length === 5, 'every kind of event delivered', 20_000, 50);
    expect(receiver.received.every((r) => r.signature.ok)).toBe(true);
    const events = receiver.received.map((r) => r.event!);
    const decisions = events.filter((e) => e.type === 'gate.decided');
    // Two waves judged, one of them delivered twice (the 500, then the retry).
    expect(new Set(decisions.map((e) => e.id)).size).toBe(2);
    expect(decisions).toHaveLength(3);
    expect(decisions.map((e) => (e.type === 'gate.decided' ? `${e.wave} ${e.verdict}` : '')).sort()).toEqual(['1 Proceed', '1 Proceed', '2 Proceed']);
    expect(events.find((e) => e.type === 'rollback.finished')).toMatchObject({ deploymentId: d.id, exposed: 4, confirmed: 4, unreachable: 0 });
    expect(events.find((e) => e.type === 'deployment.completed')).toMatchObject({ deploymentId: d.id, waves: 2 });
    expect(events.find((e) => e.type === 'deployment.aborted')).toMatchObject({ deploymentId: d.id, reason: 'webhook test', rollback: true });
    expect(events.find((e) => e.type === 'rollback.started')).toMatchObject({ deploymentId: d.id, reason: 'webhook test', exposed: 4 });

    const listed = await api<{ webhooks: { deliveries: Record<string, number> }[] }>(c, 'GET', '/v1/webhooks');
    expect(listed.body.webhooks[0]!.deliveries).toMatchObject({ pending: 0, failed: 0 });
    const metrics = await (await fetch(`${c.httpUrl}/metrics`, { headers: { authorization: `Bearer ${c.adminToken}` } })).text();
    expect(metrics).toMatch(/^fleet_webhook_deliveries_total\{outcome="retry"\} 1$/m);
  });
});
