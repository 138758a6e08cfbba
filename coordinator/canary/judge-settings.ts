/**
 * Per-deployment settings of the statistical judge (`DeploymentSpec.judge`), each within bounds that
 * keep the judge safe: an operator can lengthen or shorten the warm-up, lower the exposure floor for a
 * fleet whose devices rarely crash, or tighten thresholds, but not switch the tests off. And what the
 * operator wants a canary wave to detect (`plan`), which `deploy create` checks each wave against.
 * zod schema plus the pure mapping onto a JudgeConfig.
 */
import { z } from 'zod';
import { DEFAULT_JUDGE_CONFIG, type JudgeConfig } from './judge-config.js';
import { definedProps } from '@fleet/firmware/defined-props';

const HOUR = 3_600_000;

export const JudgeSettingsSchema = z
  .object({
    /** Time after each canary's update left out of its continuous metrics (default: the coordinator's, 5 minutes). */
    warmUpMs: z.number().int().min(0).max(HOUR).optional(),
    /** Canary events expected at the control's rates below which the judge holds (default 5; 0 never holds on exposure). */
    minExpectedEvents: z.number().min(0).max(100).optional(),
    /** Family-wise significance of a hold, and of a rollback (default 0.01 and 0.001). */
    alpha: z.number().min(0.001).max(0.05).optional(),
    abortAlpha: z.number().min(0.0001).max(0.01).optional(),
    /** Rate-ratio lower bounds for a hold and a rollback, every counter (default 1.1 and 1.25). */
    highRatio: z.number().min(1).max(2).optional(),
    criticalRatio: z.number().min(1.05).max(5).optional(),
    /** Hours a device must be observed before its slope (leak, drain) counts (default 4). */
    minSlopeHours: z.number().min(0.5).max(48).optional(),
    /** Slots the snapshot window is cut into (default 12). */
    slots: z.number().int().min(4).max(48).optional(),
    /** What each canary wave should be able to roll back; `deploy create` warns about waves that cannot. */
    plan: z
      .object({
        /** Baseline events (crashes) per device-day. */
        baselinePerDeviceDay: z.number().positive().max(1000),
        /** Rate ratio to detect, e.g. 2. */
        ratio: z.number().gt(1).max(100),
        /** Wanted probability of a rollback. Default 0.8. */
        power: z.number().min(0.5).max(0.99).default(0.8),
      })
      .optional(),
  })
  .superRefine((s, ctx) => {
    if (s.alpha !== undefined && s.abortAlpha !== undefined && s.abortAlpha > s.alpha) {
      ctx.addIssue({ code: 'custom', path: ['abortAlpha'], message: 'a rollback needs at least the evidence a hold does: abortAlpha ≤ alpha' });
    }
    const high = s.highRatio ?? DEFAULT_JUDGE_CONFIG.counters[0]!.highRatio;
    if (s.criticalRatio !== undefined && s.criticalRatio < high) {
      ctx.addIssue({ code: 'custom', path: ['criticalRatio'], message: `criticalRatio must be at least highRatio (${high})` });
    }
  });
export type JudgeSettings = z.infer<typeof JudgeSettingsSchema>;

/** The judge's configuration for a deployment: `base` with the deployment's settings applied. */
export function judgeConfigFor(settings: JudgeSettings | undefined, base: JudgeConfig = DEFAULT_JUDGE_CONFIG): JudgeConfig {
  if (!settings) return base;
  return {
    ...base,
    ...definedProps({
      minExpectedEvents: settings.minExpectedEvents,
      alpha: settings.alpha,
      abortAlpha: settings.abortAlpha,
      minSlopeHours: settings.minSlopeHours,
    }),
    counters: base.counters.map((c) => ({
      ...c,
      ...definedProps({ highRatio: settings.highRatio }),
      ...(settings.criticalRatio !== undefined ? { criticalRatio: Math.max(settings.criticalRatio, settings.highRatio ?? c.highRatio) } : {}),
    })),
  };
}
