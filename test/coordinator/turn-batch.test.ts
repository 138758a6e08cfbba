/**
 * Group commit of keyed rows (coordinator/store/turn-batch.ts): what one turn adds is flushed once,
 * what arrives during a flush waits for it and goes next (so a key's writes land in order), a failed
 * flush fails every add of its batch and no other, and `has` / `idle` say what is not stored yet.
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

  it("a key changed during its own flush is stored again after it: the last value wins, whatever the store's latency", async () => {
    const value = new Map<string, number>();
    const stored = new Map<string, number>();
    const order: number[] = [];
    let calls = 0;
    // Each flush reads the values when it runs and takes longer than the one after it would.
    const batch = new TurnBatch<string>(async (keys) => {
      const rows = keys.map((k) => [k, value.get(k)!] as const);
      const delay = 2 * Math.max(0, 5 - ++calls);
      for (let i = 0; i < delay; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      for (const [k, v] of rows) stored.set(k, v);
      order.push(...rows.map(([, v]) => v));
    });
    const adds: Promise<void>[] = [];
    for (let v = 1; v <= 5; v++) {
      value.set('a', v);
      adds.push(batch.add('a'));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(adds);
    expect(stored.get('a')).toBe(5);
    expect(order).toEqual([...order].sort((x, y) => x - y));
  });

  it('has a key while it is due or in flight, and idle() waits for every batch, a failed one too', async () => {
    let release!: () => void;
    const first = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const batch = new TurnBatch<string>(() => (++calls === 1 ? first.then(() => Promise.reject(new Error('disk full'))) : Promise.resolve()));
    await batch.idle();
    const a = batch.add('a').catch((err: unknown) => err);
    expect([batch.has('a'), batch.has('b')]).toEqual([true, false]);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(calls).toBe(1);
    const b = batch.add('b');
    expect([batch.has('a'), batch.has('b')]).toEqual([true, true]);
    let idle = false;
    const waiting = batch.idle().then(() => (idle = true));
    release();
    expect(await a).toBeInstanceOf(Error);
    expect(batch.has('a')).toBe(false);
    await b;
    await waiting;
    expect([idle, calls, batch.has('b')]).toEqual([true, 2, false]);
  });
});
