/**
 * The durable record, pure (what goes in, how copies merge, how a lost state file is rebuilt and an
 * old one raised), and its two-copy file store against a real filesystem with torn writes.
 */
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialAgentState, type AgentState } from '../../agent/agent-state.js';
import {
  DURABLE_HANDLED_LIMIT,
  STATUS_SEQ_BLOCK,
  decodeDurable,
  durableOf,
  encodeDurable,
  mergeDurable,
  raiseToDurable,
  rebuildState,
  reserveSeq,
  sameDurable,
  type DurableRecord,
} from '../../agent/durable-record.js';
import { DurableCopies } from '../../agent/slots/durable-copies.js';
import { DURABLE_MAX_BYTES } from '../../agent/slots/slot-backend.js';

const id64 = (c: string) => c.repeat(64);

/** A device that committed 1.1.0 (securityVersion 2, deployment d1) into slot B over 1.0.0. */
const committed = (): AgentState => ({
  ...initialAgentState('1.0.0', 'A'),
  booted: 'B',
  seq: 17,
  seqReserved: 1000,
  slotVersions: { A: '1.0.0', B: '1.1.0' },
  slotDeployments: { B: 'd1' },
  slotSecurity: { B: 2 },
  securityFloor: 2,
  handled: ['d0', 'd1'],
  manifestVersion: 500,
  manifestDeployment: 'd1',
  commandSeq: 40,
});

const record = (over: Partial<DurableRecord> = {}): DurableRecord => ({ ...durableOf(committed(), 3), ...over });

describe('the durable record', () => {
  it('holds what must never go backwards and what each slot holds', () => {
    expect(durableOf(committed(), 3)).toEqual({
      v: 1,
      gen: 3,
      securityFloor: 2,
      manifestVersion: 500,
      manifestDeployment: 'd1',
      seqReserved: 1000,
      commandSeq: 40,
      handled: ['d0', 'd1'],
      slots: { A: { version: '1.0.0' }, B: { version: '1.1.0', securityVersion: 2, deploymentId: 'd1' } },
    });
  });

  it('fits a U-Boot variable even with the longest ids', () => {
    const s: AgentState = {
      ...committed(),
      slotVersions: { A: '10.200.3000-rc.12', B: '10.200.3001-rc.12' },
      slotDeployments: { A: id64('a'), B: id64('b') },
      slotSecurity: { A: 999, B: 1000 },
      securityFloor: 1000,
      handled: Array.from({ length: 64 }, (_, i) => `${i}`.padEnd(64, 'h')),
      manifestVersion: Number.MAX_SAFE_INTEGER,
      manifestDeployment: id64('m'),
      commandSeq: Number.MAX_SAFE_INTEGER,
      seq: 99_999_999,
      seqReserved: 100_000_999,
    };
    const text = encodeDurable(durableOf(s, Number.MAX_SAFE_INTEGER));
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(DURABLE_MAX_BYTES);
    expect(durableOf(s).handled).toHaveLength(DURABLE_HANDLED_LIMIT);
    expect(decodeDurable(text, 'r').record).toEqual(durableOf(s, Number.MAX_SAFE_INTEGER));
  });

  it.each([
    { name: 'missing', text: null, problem: false },
    { name: 'empty', text: '', problem: false },
    { name: 'not JSON', text: '{"v":1,', problem: true },
    { name: 'a negative floor', text: JSON.stringify({ ...record(), securityFloor: -1 }), problem: true },
    { name: 'another version', text: JSON.stringify({ ...record(), v: 2 }), problem: true },
  ])('decodes a $name record to null', ({ text, problem }) => {
    const r = decodeDurable(text, 'durable.json');
    expect(r.record).toBeNull();
    expect(r.problem !== undefined).toBe(problem);
  });

  it('sees no change when only the generation differs', () => {
    expect(sameDurable(record({ gen: 1 }), record({ gen: 9 }))).toBe(true);
    expect(sameDurable(record(), record({ commandSeq: 41 }))).toBe(false);
  });

  describe('merging copies', () => {
    it.each([
      {
        name: 'every counter at its highest, slots from the newest generation',
        a: record({ gen: 5, securityFloor: 3, seqReserved: 2000, commandSeq: 10, slots: { A: { version: '2.0.0' } } }),
        b: record({ gen: 4, securityFloor: 2, seqReserved: 3000, commandSeq: 50 }),
        want: { gen: 5, securityFloor: 3, seqReserved: 3000, commandSeq: 50, slots: { A: { version: '2.0.0' } } },
      },
      {
        name: 'the newest manifest with the deployment it came under',
        a: record({ gen: 9, manifestVersion: 400, manifestDeployment: 'old' }),
        b: record({ gen: 2, manifestVersion: 600, manifestDeployment: 'new' }),
        want: { gen: 9, manifestVersion: 600, manifestDeployment: 'new' },
      },
    ])('$name', ({ a, b, want }) => {
      expect(mergeDurable([a, b])).toMatchObject(want);
      expect(mergeDurable([b, a])).toMatchObject(want);
    });

    it('one copy is enough; none is null', () => {
      expect(mergeDurable([null, record()])).toEqual(record());
      expect(mergeDurable([null, null])).toBeNull();
    });
  });

  describe('rebuilding a lost state file', () => {
    const factory = { firmwareVersion: '1.0.0', securityFloor: 0 };

    it('takes the truth from the record and the bootloader, not the factory values', () => {
      const { state, notes } = rebuildState(factory, 'B', record());
      expect(state).toMatchObject({
        booted: 'B',
        slotVersions: { A: '1.0.0', B: '1.1.0' },
        slotDeployments: { B: 'd1' },
        slotSecurity: { B: 2 },
        securityFloor: 2,
        manifestVersion: 500,
        manifestDeployment: 'd1',
        commandSeq: 40,
        handled: ['d0', 'd1'],
        job: null,
      });
      // The next status seq is above every one sent before.
      expect(state.seq).toBe(1000);
      expect(notes).toEqual([]);
    });

    it('follows the bootloader: a record of B committed, but A booted (a fall-back) runs 1.0.0', () => {
      expect(rebuildState(factory, 'A', record()).state.slotVersions).toEqual({ A: '1.0.0', B: '1.1.0' });
    });

    it('says so when the record does not know the running slot, and assumes the factory version there', () => {
      const { state, notes } = rebuildState(factory, 'A', record({ slots: { B: { version: '1.1.0', securityVersion: 2 } } }));
      expect(state.slotVersions).toEqual({ A: '1.0.0', B: '1.1.0' });
      expect(state.slotSecurity).toEqual({ B: 2 });
      expect(notes).toEqual([expect.stringMatching(/does not say what slot A holds/)]);
    });

    it('keeps the higher of the config floor and the record floor', () => {
      expect(rebuildState({ ...factory, securityFloor: 5 }, 'B', record()).state.securityFloor).toBe(5);
    });

    it('starts from the factory values on a device that never wrote a record', () => {
      expect(rebuildState(factory, 'A', null).state).toEqual(initialAgentState('1.0.0', 'A', 0));
    });
  });

  describe('raising a loaded state file to the record', () => {
    it('an older state file (a restored backup) never takes anything backwards', () => {
      const old: AgentState = { ...committed(), seq: 3, seqReserved: 1000, securityFloor: 0, manifestVersion: 100, commandSeq: 5, handled: ['d0'] };
      const r = raiseToDurable(old, record({ seqReserved: 3000 }));
      expect(r).toMatchObject({ securityFloor: 2, manifestVersion: 500, manifestDeployment: 'd1', commandSeq: 40, seq: 3000, seqReserved: 3000, handled: ['d0', 'd1'] });
    });

    it('a current state file is left as it is', () => {
      const s = committed();
      expect(raiseToDurable(s, record())).toEqual(s);
      expect(raiseToDurable(s, null)).toBe(s);
    });
  });

  it('reserves the next block of status seqs only when the last one is used up', () => {
    const s = committed();
    expect(reserveSeq(s)).toBe(s);
    expect(reserveSeq({ ...s, seq: 1000 }).seqReserved).toBe(1000 + STATUS_SEQ_BLOCK);
    expect(reserveSeq({ ...initialAgentState('1.0.0', 'A') }).seqReserved).toBe(STATUS_SEQ_BLOCK);
  });
});

describe('DurableCopies (two copies written in turn)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-durable-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the newest intact copy; a torn write leaves the previous record', async () => {
    const copies = new DurableCopies(join(dir, 'boot', 'fleet-durable'));
    expect(await copies.read()).toBeNull();
    await copies.write('{"gen":1}');
    await copies.write('{"gen":2}');
    expect(await copies.read()).toBe('{"gen":2}');
    // The third write goes over the older copy (.0); tear it half-way.
    const older = join(dir, 'boot', 'fleet-durable.0');
    const full = (await readFile(older, 'utf8')).replace('{"gen":1}', '{"gen":3}');
    await writeFile(older, full.slice(0, full.length / 2));
    expect(await copies.read()).toBe('{"gen":2}');
    // A copy whose bytes were altered fails its checksum.
    const newer = join(dir, 'boot', 'fleet-durable.1');
    await writeFile(newer, (await readFile(newer, 'utf8')).replace('"gen":2', '"gen":7'));
    expect(await copies.read()).toBeNull();
    await copies.write('{"gen":8}');
    expect(await copies.read()).toBe('{"gen":8}');
  });
});
