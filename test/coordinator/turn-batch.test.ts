/**
 * Group commit of keyed rows (coordinator/store/turn-batch.ts): what one turn adds is flushed once,
 * what arrives during a flush waits for it and goes next, and a failed flush fails every add of its
 * batch and no other.
 */
import { describe, expect, it } from 'vitest';
import { TurnBatch } from '../../coordinator/store/turn-batch.js';

describe('TurnBatch', () => {
  it('flushes the keys of one turn together, once each, and resolves every add after the flush', async () => {
    const flushed: string[][] = [];
    const batch = new TurnBatch<string>((keys) => {
      flushed.push([...keys]);
      return Promise.resolve();
    });
    const adds = [batch.add('a'), batch.add('b'), batch.add('a')];
    expect(flushed).toEqual([]);
    await Promise.all(adds);
    expect(flushed).toEqual([['a', 'b']]);
  });

  it('keys added while a flush is in flight form the next batch, after it', async () => {
    const flushed: string[][] = [];
    let release!: () => void;
    const first = new Promise<void>((resolve) => (release = resolve));
    const batch = new TurnBatch<string>((keys) => {
      flushed.push([...keys]);
      return flushed.length === 1 ? first : Promise.resolve();
    });
    const a = batch.add('a');
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(flushed).toEqual([['a']]);
    let bDone = false;
    const b = batch.add('b').then(() => (bDone = true));
    const c = batch.add('c');
    await new Promise<void>((resolve) => setImmediate(resolve));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(flushed).toEqual([['a']]);
    expect(bDone).toBe(false);
    release();
    await Promise.all([a, b, c]);
    expect(flushed).toEqual([['a'], ['b', 'c']]);
  });

  it('a failed flush rejects the adds of its batch only', async () => {
    let calls = 0;
    const batch = new TurnBatch<string>(() => (++calls === 1 ? Promise.reject(new Error('disk full')) : Promise.resolve()));
    const failed = [batch.add('a'), batch.add('b')];
    await expect(failed[0]).rejects.toThrow('disk full');
    await expect(failed[1]).rejects.toThrow('disk full');
    await expect(batch.add('a')).resolves.toBeUndefined();
  });
});
