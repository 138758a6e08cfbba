/**
 * Row batches: single-row writes of one turn of the event loop leave as one statement, split at the
 * row limit, in order, each caller told how its own statement went.
 */
import { describe, expect, it } from 'vitest';
import { RowBatch } from '../../coordinator/store/row-batch.js';

describe('row batch', () => {
  it('writes the rows added in one turn together, split at maxRows, batches in order', async () => {
    const statements: number[][] = [];
    const batch = new RowBatch<number>({ write: (rows) => Promise.resolve(statements.push([...rows])), maxRows: 3 });
    const first = [1, 2, 3, 4, 5].map((n) => batch.add(() => n));
    await Promise.all(first);
    await batch.add(() => 6);
    expect(statements).toEqual([[1, 2, 3], [4, 5], [6]]);
  });

  it('reads each row when its batch leaves, not when it was added', async () => {
    const statements: string[][] = [];
    const batch = new RowBatch<string>({ write: (rows) => Promise.resolve(statements.push([...rows])), maxRows: 10 });
    let state = 'old';
    const stored = batch.add(() => state);
    state = 'new';
    await stored;
    expect(statements).toEqual([['new']]);
  });

  it('rejects the rows of a failed statement only, and goes on with the next', async () => {
    const batch = new RowBatch<number>({ write: (rows) => (rows.includes(2) ? Promise.reject(new Error('refused')) : Promise.resolve()), maxRows: 2 });
    const results = await Promise.allSettled([1, 2, 3].map((n) => batch.add(() => n)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    await expect(batch.add(() => 4)).resolves.toBeUndefined();
    await batch.idle();
  });
});
