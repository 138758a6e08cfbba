/**
 * Builds the retained device-flags message (`fleet/v1/flags`) from the flag store's state: device-scope
 * flags only, with enabled (the kill switch), rollout and variant weights, which agents bucket on their
 * own device id with protocol/flag-bucketing.ts. The shell publishes it retained at QoS 1. Pure.
 */
import { PROTOCOL_VERSION } from '@fleet/protocol/signed';
import { FlagsMessageSchema, type FlagsMessage } from '@fleet/protocol/messages';
import type { FlagDefinition } from './flag-model.js';

/** The FlagsMessage for these flags at store version `version`. */
export function buildFlagsMessage(flags: readonly FlagDefinition[], version: number, at: number): FlagsMessage {
  const out: FlagsMessage['flags'] = {};
  for (const f of flags) {
    if (f.scope !== 'device') continue;
    out[f.name] = { enabled: f.enabled, rollout: f.rollout, variants: f.variants.map((v) => ({ name: v.name, weight: v.weight })) };
  }
  // Validate what we publish with the same schema agents parse with.
  return FlagsMessageSchema.parse({ v: PROTOCOL_VERSION, kind: 'flags', version, flags: out, at });
}
