/**
 * One-call wiring of canary analysis and flags for the coordinator shell: the flag store (republishing
 * the retained device-flags message whenever a device flag changes), the flag admin routes, and the
 * flag-driven `analyzersFor(deployment, wave)` for the engine runner, with the AI endpoint from
 * FLEET_AI_* variables. On a store other coordinators share (PostgreSQL), the flags the gate reads are
 * re-read every `refresh.everyMs`, so a change made through another coordinator reaches this one's
 * gate within that time. Shell-side (holds the store); everything it wires is tested on its own.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import type { FlagsMessage } from '@fleet/protocol/messages';
import type { AdminApi } from '../admin/admin-api.js';
import type { GateAnalyzer } from '../gate/analyzer.js';
import type { AuditLog } from '../store/audit-log.js';
import type { Sql } from '../store/sql.js';
import { FlagStore } from '../flags/flag-store.js';
import { registerFlagRoutes } from '../flags/flag-routes.js';
import { createAnalyzersFor } from './analyzers-for.js';
import { aiConfigFromEnv, type AiScorerConfig } from './ai-scorer.js';
import type { JudgeConfig } from './judge-config.js';
import type { JudgeSettings } from './judge-settings.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface CanaryServicesOptions {
  sql: Sql;
  /** The injected clock's now(). */
  now: () => number;
  /** Flag changes are recorded here too, inside each change's transaction. */
  audit?: Pick<AuditLog, 'append'>;
  /** Environment for FLEET_AI_* (default: none, so the AI never runs). */
  env?: Record<string, string | undefined>;
  /** Publishes the retained `fleet/v1/flags` message (QoS 1); called on every device-flag change. */
  publishDeviceFlags?: (message: FlagsMessage) => void;
  judgeConfig?: JudgeConfig;
  /** Re-read the flags this often (a shared store); failures are logged and retried at the next. Default: never. */
  refresh?: { timers: Clock; everyMs: number; logger: Logger };
}

export interface CanaryServices {
  flags: FlagStore;
  /** The AI endpoint in use, if configured. */
  ai: AiScorerConfig | undefined;
  /** The deployment's judge settings, when it has any, shape its statistical judge. */
  analyzersFor: (deployment: { id: string; judge?: JudgeSettings | undefined }, wave: number) => GateAnalyzer[];
  registerRoutes(api: AdminApi): void;
  /** The current device-flags message (publish it retained at startup). */
  deviceFlagsMessage(): FlagsMessage;
  /** Ends the refresh (safe twice). */
  stop(): void;
}

/** Loads the flags and wires what depends on them. */
export async function createCanaryServices(o: CanaryServicesOptions): Promise<CanaryServices> {
  const ai = aiConfigFromEnv(o.env ?? {});
  const { audit } = o;
  // The store is loaded before the callback can run (changes only happen after it resolves).
  const flags: FlagStore = await FlagStore.load({
    sql: o.sql,
    now: o.now,
    // Inside the change's transaction (who: the current request's user, as append's default).
    ...(audit ? { audit: (tx, e) => audit.append(e.at, e.actor, e.action, e.subject, e.detail, undefined, tx) } : {}),
    onChange: (change) => {
      if (change.before?.scope === 'device' || change.after?.scope === 'device') o.publishDeviceFlags?.(flags.deviceFlagsMessage());
    },
  });
  let timer: TimerHandle | undefined;
  let stopped = false;
  const { refresh } = o;
  const schedule = (): void => {
    if (!refresh || stopped) return;
    timer = refresh.timers.setTimeout(() => {
      flags
        .reload()
        .catch((err: unknown) => refresh.logger.warn({ err }, 'flags could not be re-read from the store; the gate keeps the last ones read'))
        .finally(schedule);
    }, refresh.everyMs);
  };
  schedule();
  return {
    flags,
    ai,
    analyzersFor: createAnalyzersFor({ flags, ai, ...definedProps({ judgeConfig: o.judgeConfig }) }),
    registerRoutes: (api) => registerFlagRoutes(api, { flags }),
    deviceFlagsMessage: () => flags.deviceFlagsMessage(),
    stop: () => {
      stopped = true;
      if (timer && refresh) refresh.timers.clearTimeout(timer);
      timer = undefined;
    },
  };
}
