/**
 * Webhooks for operators: add (URL, events, signing secret), list with each one's last delivery,
 * remove, test; and the intake of the coordinator's decisions and audit entries, turned into events
 * (webhook-events.ts) for the webhooks subscribed to them. A webhook URL is http(s); staging and
 * production take https only, as they refuse plaintext everywhere else (config.ts). I/O shell.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { FleetError } from '@fleet/protocol/errors';
import { SUBSCRIBABLE_EVENTS, WebhookEventTypeSchema, type WebhookEvent } from '@fleet/protocol/webhooks';
import type { CoordinatorConfig } from '../config.js';

type AppEnv = CoordinatorConfig['env'];
import type { DecisionRecord } from '../gate/decision.js';
import type { AuditEntry } from '../engine/types.js';
import type { AttemptResult, WebhookDispatcher } from './webhook-dispatcher.js';
import type { AttemptRecord, DeliveryRecord, WebhookRecord, WebhookStore } from './webhook-store.js';
import { auditEvent, decisionEvent } from './webhook-events.js';

/** At most this many webhooks: each event is stored once per webhook. */
export const MAX_WEBHOOKS = 50;

export const WebhookRequestSchema = z
  .object({
    url: z.string().min(1).max(2048),
    /** Default: every event (SUBSCRIBABLE_EVENTS). */
    events: z.array(WebhookEventTypeSchema.exclude(['webhook.test'])).min(1).max(SUBSCRIBABLE_EVENTS.length).optional(),
    /** The HMAC key; generated (and returned once) when absent. */
    secret: z.string().min(16, 'a webhook secret needs at least 16 characters').max(256).optional(),
    description: z.string().max(500).optional(),
  })
  .strict();
export type WebhookRequest = z.infer<typeof WebhookRequestSchema>;

/** A webhook as the API shows it: never its secret, its URL without user:password. */
export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  createdAt: number;
  createdBy: string;
  deliveries: Record<DeliveryRecord['status'], number>;
  lastDelivery: Omit<DeliveryView, 'attemptLog'> | null;
}

export interface DeliveryView {
  id: number;
  eventId: string;
  eventType: string;
  status: DeliveryRecord['status'];
  attempts: number;
  createdAt: number;
  finishedAt: number | null;
  nextAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  lastLatencyMs: number | null;
  attemptLog?: AttemptRecord[];
}

export class WebhookUrlError extends FleetError {
  constructor(message: string) {
    super('invalid-input', message);
  }
}

/** The URL to POST to, checked: http(s), a host, https only outside development. */
export function checkWebhookUrl(url: string, env: AppEnv): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new WebhookUrlError(`webhook URL ${JSON.stringify(url.slice(0, 200))} is not a URL; give one such as https://alerts.example.com/fleet`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new WebhookUrlError(`webhook URL must be http:// or https://, not ${u.protocol}`);
  if (u.hostname === '') throw new WebhookUrlError('webhook URL has no host');
  if (env !== 'development' && u.protocol !== 'https:') {
    throw new WebhookUrlError(`${env} sends webhooks over https only: the events name deployments and their reasons; use https://${u.host}${u.pathname}`);
  }
  return u.toString();
}

/** The URL without its user:password, for listings and logs. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username === '' && u.password === '') return url;
    u.username = '***';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

export interface WebhookServiceDeps {
  store: WebhookStore;
  dispatcher: WebhookDispatcher;
  env: AppEnv;
  /** Coordinator clock (event times). */
  now: () => number;
  audit: (actor: string, action: string, subject: string, detail: Record<string, unknown>) => void;
  logger: Logger;
  /** Ids for events and webhooks. Default random UUIDs. */
  newId?: () => string;
}

export class WebhookNotFoundError extends FleetError {
  constructor(id: string) {
    super('not-found', `no webhook ${JSON.stringify(id)}; list them with \`fleet webhooks list\``);
  }
}

export class WebhookService {
  /** Events from the engine, stored one after another in the order they came. */
  private intake: Promise<void> = Promise.resolve();

  constructor(private readonly deps: WebhookServiceDeps) {}

  private newId(): string {
    return this.deps.newId?.() ?? randomUUID();
  }

  async add(request: WebhookRequest, actor: string): Promise<{ webhook: WebhookView; secret: string }> {
    const url = checkWebhookUrl(request.url, this.deps.env);
    if ((await this.deps.store.webhooks()).length >= MAX_WEBHOOKS) {
      throw new FleetError('conflict', `at most ${MAX_WEBHOOKS} webhooks; remove one with \`fleet webhooks remove <id>\``);
    }
    const secret = request.secret ?? `whsec_${randomBytes(24).toString('base64url')}`;
    const record: WebhookRecord = {
      id: `wh-${this.newId().replace(/-/g, '').slice(0, 10)}`,
      url,
      events: [...new Set(request.events ?? SUBSCRIBABLE_EVENTS)],
      secret,
      description: request.description ?? null,
      createdAt: this.deps.now(),
      createdBy: actor,
    };
    await this.deps.store.addWebhook(record);
    this.deps.audit(actor, 'webhook.added', record.id, { url: maskUrl(url), events: record.events });
    return { webhook: await this.view(record), secret };
  }

  async list(): Promise<WebhookView[]> {
    return Promise.all((await this.deps.store.webhooks()).map((w) => this.view(w)));
  }

  async get(id: string): Promise<WebhookView> {
    return this.view(await this.must(id));
  }

  async remove(id: string, actor: string): Promise<void> {
    const w = await this.must(id);
    await this.deps.store.removeWebhook(id);
    this.deps.audit(actor, 'webhook.removed', id, { url: maskUrl(w.url) });
  }

  /** Sends a `webhook.test` event now, once, and answers with what the receiver did. */
  async test(id: string, actor: string): Promise<AttemptResult> {
    const w = await this.must(id);
    const event: WebhookEvent = { v: 1, id: this.newId(), at: this.deps.now(), type: 'webhook.test', webhookId: w.id, message: `test event from the fleet coordinator, sent by ${actor}` };
    const [deliveryId] = await this.deps.dispatcher.publish(event, [w.id], { queue: false });
    if (deliveryId === undefined) throw new FleetError('internal', 'the test event could not be stored; see the coordinator log');
    const result = await this.deps.dispatcher.sendOnce(deliveryId);
    this.deps.audit(actor, 'webhook.tested', id, { delivered: result.delivered, status: result.status, error: result.error });
    return result;
  }

  async deliveries(id: string, limit: number): Promise<DeliveryView[]> {
    await this.must(id);
    const recent = await this.deps.store.recent(id, limit);
    return Promise.all(recent.map(async (d) => ({ ...deliveryView(d), attemptLog: await this.deps.store.attempts(d.id) })));
  }

  /** A decision the engine recorded: `gate.decided` to its subscribers. Never throws. */
  onDecision(d: DecisionRecord): void {
    this.enqueue(() => decisionEvent(d, this.newId()));
  }

  /** An engine audit entry: an abort, completion or rollback to their subscribers. Never throws. */
  onAudit(e: AuditEntry): void {
    this.enqueue(() => auditEvent(e, this.newId()));
  }

  /** Resolves when every event taken so far is stored as deliveries (tests, and an orderly stop). */
  settled(): Promise<void> {
    return this.intake;
  }

  /**
   * The engine calls in from its effects: the event is built now, stored after the ones before it, and
   * a failure is logged, never thrown back into the engine.
   */
  private enqueue(build: () => WebhookEvent | undefined): void {
    let event: WebhookEvent | undefined;
    try {
      event = build();
    } catch (err) {
      this.deps.logger.error({ err }, 'webhook event not queued');
      return;
    }
    if (!event) return;
    const publish = async (e: WebhookEvent): Promise<void> => {
      const ids = (await this.deps.store.webhooks()).filter((w) => w.events.includes(e.type)).map((w) => w.id);
      await this.deps.dispatcher.publish(e, ids);
    };
    this.intake = this.intake.then(() => publish(event)).catch((err: unknown) => this.deps.logger.error({ err, eventType: event.type }, 'webhook event not queued'));
  }

  private async must(id: string): Promise<WebhookRecord> {
    const w = await this.deps.store.webhook(id);
    if (!w) throw new WebhookNotFoundError(id);
    return w;
  }

  private async view(w: WebhookRecord): Promise<WebhookView> {
    const [[last], deliveries] = await Promise.all([this.deps.store.recent(w.id, 1), this.deps.store.counts(w.id)]);
    return {
      id: w.id,
      url: maskUrl(w.url),
      events: w.events,
      description: w.description,
      createdAt: w.createdAt,
      createdBy: w.createdBy,
      deliveries,
      lastDelivery: last ? deliveryView(last) : null,
    };
  }
}

function deliveryView(d: DeliveryRecord): DeliveryView {
  return {
    id: d.id,
    eventId: d.eventId,
    eventType: d.eventType,
    status: d.status,
    attempts: d.attempts,
    createdAt: d.createdAt,
    finishedAt: d.finishedAt,
    nextAttemptAt: d.nextAttemptAt,
    lastStatus: d.lastStatus,
    lastError: d.lastError,
    lastLatencyMs: d.lastLatencyMs,
  };
}
