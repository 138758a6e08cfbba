/**
 * Feature flags: the definition schema, the well-known coordinator flags, and pure evaluation
 * (kill switch, percentage rollout, weighted variants, Unleash bucketing). Pure.
 *
 * A flag's `enabled: false` is its kill switch: off for every key whatever the rollout. Coordinator
 * flags are evaluated by the coordinator with a stickiness key it chooses (for analyzer flags the wave,
 * `${deploymentId}:${wave}`, independent of which devices get the firmware); device flags are published
 * to agents in the retained FlagsMessage and bucketed on the device id.
 */
import { z } from 'zod';
import { inRollout, selectVariant } from '@fleet/protocol/flag-bucketing';

export const FLAG_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const FlagNameSchema = z.string().regex(FLAG_NAME_PATTERN, { message: "flag names are 1-64 letters, digits, '.', '_' or '-'" });

export const FlagVariantSchema = z.object({
  name: z.string().regex(FLAG_NAME_PATTERN, { message: "variant names are 1-64 letters, digits, '.', '_' or '-'" }),
  weight: z.number().int().min(0).max(100_000),
  /** Settings the variant carries, e.g. `{promptId, model}` for the AI scorer. */
  payload: z.record(z.string(), z.string().max(256)).default({}),
});
export type FlagVariant = z.infer<typeof FlagVariantSchema>;

export const FlagScopeSchema = z.enum(['coordinator', 'device']);

export const FlagDefinitionSchema = z.object({
  name: FlagNameSchema,
  description: z.string().max(500).default(''),
  scope: FlagScopeSchema.default('coordinator'),
  /** The kill switch: false turns the flag off for everyone. */
  enabled: z.boolean(),
  /** Percentage of keys (1..100 buckets) that see it on. */
  rollout: z.number().min(0).max(100).default(100),
  /** Bucketing group; defaults to the flag name (as in Unleash). */
  groupId: z.string().min(1).max(128).optional(),
  variants: z.array(FlagVariantSchema).max(20).default([]),
});
export type FlagDefinition = z.infer<typeof FlagDefinitionSchema>;
export type FlagDefinitionInput = z.input<typeof FlagDefinitionSchema>;

/** A stored flag: its definition plus bookkeeping. */
export interface StoredFlag extends FlagDefinition {
  /** Store-wide change counter at the flag's last change (monotonic). */
  version: number;
  updatedAt: number;
  updatedBy: string;
}

export interface FlagEvaluation {
  name: string;
  enabled: boolean;
  /** `killed` (kill switch), `outside-rollout`, `enabled`, or `default` (no such flag stored). */
  reason: 'killed' | 'outside-rollout' | 'enabled' | 'default';
  variant?: { name: string; payload: Record<string, string> };
  /** The stored flag version evaluated (0 for a default). */
  version: number;
}

/** Evaluates a flag for a stickiness key. */
export function evaluateFlag(flag: FlagDefinition & { version?: number }, key: string): FlagEvaluation {
  const version = flag.version ?? 0;
  if (!flag.enabled) return { name: flag.name, enabled: false, reason: 'killed', version };
  const group = flag.groupId ?? flag.name;
  if (!inRollout(key, group, flag.rollout)) return { name: flag.name, enabled: false, reason: 'outside-rollout', version };
  const v = selectVariant(flag.variants, key, group);
  return { name: flag.name, enabled: true, reason: 'enabled', version, ...(v ? { variant: { name: v.name, payload: v.payload } } : {}) };
}

/** Well-known coordinator flags that choose the gate's analyzers per deployment wave. */
export const CANARY_STAT_FLAG = 'canary.stat';
export const CANARY_AI_FLAG = 'canary.ai';

/** Defaults used when a well-known flag has never been set: the statistical judge on, the AI off. */
export const DEFAULT_FLAGS: readonly FlagDefinition[] = [
  {
    name: CANARY_STAT_FLAG,
    description: 'run the statistical judge at wave gates (hard gates always run)',
    scope: 'coordinator',
    enabled: true,
    rollout: 100,
    variants: [],
  },
  {
    name: CANARY_AI_FLAG,
    description: 'run the AI risk scorer at wave gates (advisory); variants choose prompt and model; kill to turn it off fleet-wide',
    scope: 'coordinator',
    enabled: false,
    rollout: 100,
    variants: [
      { name: 'stable', weight: 100, payload: { promptId: 'risk-stable-v1' } },
      { name: 'experimental', weight: 0, payload: { promptId: 'risk-experimental-v2' } },
    ],
  },
];

/** The stickiness key for analyzer flags: the wave, independent of device membership. */
export function waveKey(deploymentId: string, wave: number): string {
  return `${deploymentId}:${wave}`;
}
