/**
 * Feature-flag bucketing compatible with Unleash: murmur3 x86 32-bit over the UTF-8 bytes of
 * `${groupId}:${id}`, normalised to 1..100 for percentage rollouts (seed 0) and to 1..totalWeight for
 * weighted variants (seed 86028157), variants picked by cumulative weight. Lives in protocol/ so the
 * coordinator and agents bucket identically. Pure; no dependencies.
 *
 * Unleash's published vectors: normalizedValue('123', 'gr1') = 73, normalizedValue('999', 'groupX') = 25.
 * Unlike the common JS murmur package (which hashes char codes & 0xff), this hashes UTF-8 bytes, so
 * non-ASCII ids bucket the way Unleash's other SDKs do.
 */

/** Seed Unleash uses for variant selection. */
export const VARIANT_SEED = 86028157;

/** MurmurHash3 x86 32-bit of the bytes (strings are UTF-8 encoded), as an unsigned integer. */
export function murmur3(data: Uint8Array | string, seed = 0): number {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const len = bytes.length;
  const blocks = len >>> 2;
  let h = seed >>> 0;
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    let k = bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = len & 3;
  if (rest > 0) {
    let k = 0;
    if (rest >= 3) k ^= bytes[tail + 2]! << 16;
    if (rest >= 2) k ^= bytes[tail + 1]! << 8;
    k ^= bytes[tail]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Unleash's normalizedStrategyValue: (murmur3(`${groupId}:${id}`, seed) % normalizer) + 1. */
export function normalizedValue(id: string, groupId: string, normalizer = 100, seed = 0): number {
  return (murmur3(`${groupId}:${id}`, seed) % normalizer) + 1;
}

/** Percentage rollout: enabled when rollout > 0 and the normalised value is at most `rollout`. */
export function inRollout(id: string, groupId: string, rollout: number): boolean {
  return rollout > 0 && normalizedValue(id, groupId) <= rollout;
}

/**
 * Unleash's variant selection: target = normalizedValue(id, groupId, totalWeight, VARIANT_SEED); the
 * first variant (weight > 0) whose cumulative weight reaches the target. Undefined with no weight.
 */
export function selectVariant<V extends { weight: number }>(variants: readonly V[], id: string, groupId: string): V | undefined {
  const total = variants.reduce((s, v) => s + v.weight, 0);
  if (total <= 0) return undefined;
  const target = normalizedValue(id, groupId, total, VARIANT_SEED);
  let counter = 0;
  for (const v of variants) {
    if (v.weight === 0) continue;
    counter += v.weight;
    if (counter >= target) return v;
  }
  return undefined;
}

/**
 * Evaluates one device-side flag from the retained FlagsMessage for this device (what an agent does):
 * off when killed (`enabled: false`) or outside the rollout, else on with its variant, if any. The
 * bucketing group is the flag name, as in Unleash.
 */
export function evaluateDeviceFlag(
  name: string,
  value: { enabled: boolean; rollout: number; variants: readonly { name: string; weight: number }[] } | undefined,
  deviceId: string,
): { enabled: boolean; variant?: string } {
  if (!value || !value.enabled || !inRollout(deviceId, name, value.rollout)) return { enabled: false };
  const v = selectVariant(value.variants, deviceId, name);
  return v ? { enabled: true, variant: v.name } : { enabled: true };
}
