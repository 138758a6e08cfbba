/**
 * One-call wiring of canary analysis and flags for the coordinator shell: the flag store (republishing
 * the retained device-flags message whenever a device flag changes), the flag admin routes, and the
 * flag-driven `analyzersFor(deployment, wave)` for the engine runner, with the AI endpoint from
 * FLEET_AI_* variables. Shell-side (holds the store); everything it wires is tested on its own.
 */
import type { FlagsMessage } from '@fleet/protocol/messages';
import type { AdminApi } from '../admin/admin-api.js';
import type { GateAnalyzer } from '../gate/analyzer.js';
import type { AuditLog } from '../store/audit-log.js';
import type { Db } from '../store/db.js';
import { FlagStore } from '../flags/flag-store.js';
import { registerFlagRoutes } from '../flags/flag-routes.js';
import { createAnalyzersFor } from './analyzers-for.js';
import { aiConfigFromEnv, type AiScorerConfig } from './ai-scorer.js';
import type { JudgeConfig } from './judge-config.js';
import type { JudgeSettings } from './judge-settings.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface CanaryServicesOptions {
  db: Db;
  /** The injected clock's now(). */
  now: () => number;
  audit?: AuditLog;
  /** Environment for FLEET_AI_* (default: none, so the AI never runs). */
  env?: Record<string, string | undefined>;
  /** Publishes the retained `fleet/v1/flags` message (QoS 1); called on every device-flag change. */
  publishDeviceFlags?: (message: FlagsMessage) => void;
  judgeConfig?: JudgeConfig;
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
}

export function createCanaryServices(o: CanaryServicesOptions): CanaryServices {
  const ai = aiConfigFromEnv(o.env ?? {});
  // The store is created before the callback can run (changes only happen after construction).
  const flags: FlagStore = new FlagStore({
    db: o.db,
    now: o.now,
    ...definedProps({ audit: o.audit }),
    onChange: (change) => {
      if (change.before?.scope === 'device' || change.after?.scope === 'device') o.publishDeviceFlags?.(flags.deviceFlagsMessage());
    },
  });
  return {
    flags,
    ai,
    analyzersFor: createAnalyzersFor({ flags, ai, ...definedProps({ judgeConfig: o.judgeConfig }) }),
    registerRoutes: (api) => registerFlagRoutes(api, { flags }),
    deviceFlagsMessage: () => flags.deviceFlagsMessage(),
  };
}
