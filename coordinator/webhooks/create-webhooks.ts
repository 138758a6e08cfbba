/**
 * Builds the webhook parts in order (store, dispatcher, service) from the coordinator's store,
 * real-time timers and configuration. Composition helper for coordinator.ts.
 */
import type { Logger } from 'pino';
import { definedProps } from '@fleet/firmware/defined-props';
import type { Clock } from '@fleet/protocol/clock';
import type { CoordinatorConfig } from '../config.js';
import type { Sql } from '../store/sql.js';
import { WebhookDispatcher, type AttemptOutcome } from './webhook-dispatcher.js';
import { WebhookService } from './webhook-service.js';
import { WebhookStore } from './webhook-store.js';

export interface Webhooks {
  service: WebhookService;
  dispatcher: WebhookDispatcher;
}

export function createWebhooks(o: {
  sql: Sql;
  config: Pick<CoordinatorConfig, 'env' | 'webhooks'>;
  /** Real-time timers: attempts and backoff run in real time even when the coordinator's clock is scaled. */
  timers: Clock;
  now: () => number;
  logger: Logger;
  audit: (actor: string, action: string, subject: string, detail: Record<string, unknown>) => void;
  onAttempt?: (outcome: AttemptOutcome, seconds: number) => void;
  random?: () => number;
}): Webhooks {
  const store = new WebhookStore(o.sql);
  const dispatcher = new WebhookDispatcher({
    store,
    timers: o.timers,
    logger: o.logger,
    limits: o.config.webhooks,
    ...definedProps({ onAttempt: o.onAttempt, random: o.random }),
  });
  const service = new WebhookService({ store, dispatcher, env: o.config.env, now: o.now, audit: o.audit, logger: o.logger });
  return { service, dispatcher };
}
