/** The state stores: atomic file writes, a clear error for a damaged file, and the in-memory store. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStateStore, MemoryStateStore, StateStoreError, writeFileAtomic } from '../../agent/state-store.js';
import { initialAgentState } from '../../agent/agent-state.js';
import { errorMessage } from '../../protocol/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('state stores', () => {
  it.each([
    ['file', () => new FileStateStore(join(dir, 'sub', 'state.json'))],
    ['memory', () => new MemoryStateStore()],
  ])('%s: null before the first save, then the last saved state', async (_name, make) => {
    const store = make();
    expect(await store.load()).toBeNull();
    const s = initialAgentState('1.2.3', 'B', 4);
    await store.save(s);
    await store.save({ ...s, seq: 9 });
    expect(await store.load()).toEqual({ ...s, seq: 9 });
  });

  it("memory store never aliases the caller's object", async () => {
    const store = new MemoryStateStore();
    const s = initialAgentState('1.0.0', 'A');
    await store.save(s);
    s.handled.push('mutated');
    expect((await store.load())!.handled).toEqual([]);
  });

  it('writes atomically: no temp files left, old content replaced whole', async () => {
    const path = join(dir, 'state.json');
    await writeFileAtomic(path, 'first');
    await writeFileAtomic(path, 'second');
    expect(await readFile(path, 'utf8')).toBe('second');
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('refuses to guess from a damaged state file, saying what to do', async () => {
    const path = join(dir, 'state.json');
    await writeFile(path, '{"v":1,"seq":"x"}');
    const err = await new FileStateStore(path).load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateStoreError);
    expect(errorMessage(err)).toMatch(/seq/);
    expect(errorMessage(err)).toMatch(/Move the file aside/);
  });
});
