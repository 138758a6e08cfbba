/** Unleash-compatible bucketing: the published vectors, murmur3 reference values, UTF-8 handling. */
import { describe, expect, it } from 'vitest';
import { inRollout, murmur3, normalizedValue, selectVariant, VARIANT_SEED } from '../../protocol/flag-bucketing.js';

describe('murmur3 x86 32', () => {
  it('matches the reference implementation', () => {
    expect(murmur3('', 0)).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('hello', 0)).toBe(0x248bfa47);
    expect(murmur3('The quick brown fox jumps over the lazy dog', 0)).toBe(0x2e4ff723);
  });

  it('hashes UTF-8 bytes, not char codes', () => {
    const id = 'gerät-ü-🚀';
    expect(murmur3(id)).toBe(murmur3(new TextEncoder().encode(id)));
    // The char-code variant (& 0xff) would hash a different byte string.
    const charCodes = Uint8Array.from([...id].flatMap((ch) => [...ch].map((c) => c.charCodeAt(0) & 0xff)));
    expect(murmur3(id)).not.toBe(murmur3(charCodes));
  });
});

describe('Unleash normalisation', () => {
  it('passes the published vectors', () => {
    expect(normalizedValue('123', 'gr1')).toBe(73);
    expect(normalizedValue('999', 'groupX')).toBe(25);
  });

  it('rolls out to about the requested share and nests as the percentage grows', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => `dev-${i}`);
    const at20 = ids.filter((id) => inRollout(id, 'flag.x', 20));
    const at50 = new Set(ids.filter((id) => inRollout(id, 'flag.x', 50)));
    expect(at20.length / ids.length).toBeGreaterThan(0.18);
    expect(at20.length / ids.length).toBeLessThan(0.22);
    expect(at20.every((id) => at50.has(id))).toBe(true);
    expect(ids.some((id) => inRollout(id, 'flag.x', 0))).toBe(false);
    expect(ids.every((id) => inRollout(id, 'flag.x', 100))).toBe(true);
  });

  it('selects variants by cumulative weight with the variant seed', () => {
    const variants = [{ name: 'a', weight: 1 }, { name: 'b', weight: 0 }, { name: 'c', weight: 3 }];
    const counts = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 8000; i++) counts[selectVariant(variants, `d${i}`, 'g')!.name as 'a' | 'b' | 'c']++;
    expect(counts.b).toBe(0);
    expect(counts.a / 8000).toBeGreaterThan(0.22);
    expect(counts.a / 8000).toBeLessThan(0.28);
    // Deterministic: the target is normalizedValue(id, group, total, seed).
    const target = normalizedValue('d1', 'g', 4, VARIANT_SEED);
    expect(selectVariant(variants, 'd1', 'g')!.name).toBe(target <= 1 ? 'a' : 'c');
    expect(selectVariant([{ name: 'x', weight: 0 }], 'd1', 'g')).toBeUndefined();
  });
});

describe('device-side evaluation', () => {
  it('agrees with the coordinator-side evaluation of the same flag', async () => {
    const { evaluateDeviceFlag } = await import('../../protocol/flag-bucketing.js');
    const { evaluateFlag } = await import('../../coordinator/flags/flag-model.js');
    const def = { name: 'agent.fast', description: '', scope: 'device' as const, enabled: true, rollout: 40, variants: [{ name: 'a', weight: 1, payload: {} }, { name: 'b', weight: 2, payload: {} }] };
    for (let i = 0; i < 200; i++) {
      const id = `dev-${i}`;
      const coord = evaluateFlag(def, id);
      expect(evaluateDeviceFlag(def.name, def, id)).toEqual(coord.enabled ? { enabled: true, variant: coord.variant!.name } : { enabled: false });
    }
    expect(evaluateDeviceFlag('x', { ...def, enabled: false }, 'dev-1')).toEqual({ enabled: false });
    expect(evaluateDeviceFlag('x', undefined, 'dev-1')).toEqual({ enabled: false });
  });
});
