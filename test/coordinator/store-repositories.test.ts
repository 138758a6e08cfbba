/**
 * Artifact records, integrity findings, counter totals and the audit log on both stores: written
 * through, read back after a restart (a second instance on the same store), versions immutable and
 * findings recorded once across coordinators.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { ArtifactExistsError, ArtifactStore } from '../../coordinator/artifacts/artifact-store.js';
import { IntegrityFindings } from '../../coordinator/artifacts/integrity-findings.js';
import { CounterTotals } from '../../coordinator/counter-totals.js';
import { Counters } from '../../coordinator/metrics.js';
import { AuditLog } from '../../coordinator/store/audit-log.js';
import type { Envelope, Manifest } from '../../protocol/signed.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';
import { tempDir } from './helpers.js';

const T = 1_800_000_000_000;
const SHA = 'a'.repeat(64);

function manifest(version: string): { manifest: Envelope; signed: Manifest } {
  const signed = { firmwareVersion: version, hardware: ['rpi4'], artifact: { url: 'http://127.0.0.1/x', size: 10, sha256: SHA } } as unknown as Manifest;
  return { manifest: { signed, signatures: [] }, signed };
}

describe.each(STORE_KINDS)('repositories on %s', (kind) => {
  it('artifact records: stored, read back by another instance, a version recorded once', async () => {
    const sql = await openTestStore(kind);
    const { dir, cleanup } = tempDir();
    onTestFinished(cleanup);
    const here = await ArtifactStore.load(sql, dir);
    const there = await ArtifactStore.load(sql, dir);
    const rec = await here.record({ ...manifest('1.0.0'), offlineSigned: true, uploadedAt: T });
    expect(rec).toMatchObject({ firmwareVersion: '1.0.0', sha256: SHA, size: 10, hardware: ['rpi4'], offlineSigned: true, uploadedAt: T });
    await here.record({ ...manifest('1.1.0'), offlineSigned: false, uploadedAt: T + 1 });
    expect(here.list().map((a) => a.firmwareVersion)).toEqual(['1.1.0', '1.0.0']);
    expect(here.bySha(SHA)?.sha256).toBe(SHA);
    await expect(here.record({ ...manifest('1.0.0'), offlineSigned: false, uploadedAt: T + 2 })).rejects.toBeInstanceOf(ArtifactExistsError);
    // The other instance has not read them yet; the store still refuses a second 1.0.0 from it.
    expect(there.get('1.0.0')).toBeUndefined();
    await expect(there.record({ ...manifest('1.0.0'), offlineSigned: false, uploadedAt: T + 3 })).rejects.toBeInstanceOf(ArtifactExistsError);
    await there.reload();
    expect(there.require('1.0.0')).toEqual(rec);
    expect((await ArtifactStore.load(sql, dir)).list()).toHaveLength(2);
  });

  it('integrity findings: each recorded once over coordinators, with its audit entry; a new finding again', async () => {
    const sql = await openTestStore(kind);
    const audit = new AuditLog(sql);
    const here = new IntegrityFindings(sql);
    const there = new IntegrityFindings(sql);
    const entry = (action: string) => (tx: Parameters<Parameters<IntegrityFindings['record']>[3]>[0]) => audit.append(T, 'coordinator', action, SHA, {}, undefined, tx);
    const damaged = { status: 'damaged' as const, reason: 'the image file has 5 bytes, not 10' };
    const both = await Promise.all([here.record(SHA, damaged, T, entry('artifact.damaged')), there.record(SHA, damaged, T + 1, entry('artifact.damaged'))]);
    expect(both.filter(Boolean)).toHaveLength(1);
    expect(await there.record(SHA, damaged, T + 2, entry('artifact.damaged'))).toBe(false);
    // Damaged another way, whole again, whole again elsewhere, damaged again: each change once.
    expect(await there.record(SHA, { status: 'damaged', reason: "the image file's sha256 is 00" }, T + 3, entry('artifact.damaged'))).toBe(true);
    expect(await here.record(SHA, { status: 'verified' }, T + 4, entry('artifact.repaired'))).toBe(true);
    expect(await there.record(SHA, { status: 'verified' }, T + 5, entry('artifact.repaired'))).toBe(false);
    expect(await there.record(SHA, damaged, T + 6, entry('artifact.damaged'))).toBe(true);
    expect((await audit.list({ subject: SHA })).map((e) => e.action).reverse()).toEqual(['artifact.damaged', 'artifact.damaged', 'artifact.repaired', 'artifact.damaged']);
    // An entry that cannot be written leaves the finding unrecorded, for the next one to record.
    await expect(here.record(SHA, { status: 'verified' }, T + 7, () => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full');
    expect(await there.record(SHA, { status: 'verified' }, T + 8, entry('artifact.repaired'))).toBe(true);
  });

  it('counter totals: increments add up over restarts; a failed flush keeps them pending', async () => {
    const sql = await openTestStore(kind);
    const counters = new Counters();
    const totals = await CounterTotals.load(sql, counters, () => T);
    counters.inc('a', 2);
    counters.inc('b');
    await totals.flush();
    counters.inc('a', 3);
    expect(totals.totals()).toEqual({ totals: { a: 5, b: 1 }, since: T });
    await Promise.all([totals.flush(), totals.flush()]);
    const next = new Counters();
    const again = await CounterTotals.load(sql, next, () => T + 1);
    expect(again.totals()).toEqual({ totals: { a: 5, b: 1 }, since: T });
    next.inc('a');
    await sql.run('ALTER TABLE counter_totals RENAME TO counter_totals_away');
    await expect(again.flush()).rejects.toThrow();
    await sql.run('ALTER TABLE counter_totals_away RENAME TO counter_totals');
    expect(again.totals().totals).toEqual({ a: 6, b: 1 });
    await again.flush();
    expect((await CounterTotals.load(sql, new Counters(), () => T)).totals().totals).toEqual({ a: 6, b: 1 });
  });

  it('audit log: ids ascend, filters by subject and the quoted "user" column, pages, reports appendLater failures', async () => {
    const sql = await openTestStore(kind);
    const failed: string[] = [];
    const log = new AuditLog(sql, { onError: (_e, action) => failed.push(action) });
    const seen: string[] = [];
    log.subscribe((r) => seen.push(r.action));
    const a = await log.append(T, 'alice', 'devices.provisioned', 'dev-1', { reason: 'new batch' }, { user: 'alice', role: 'admin', source: '127.0.0.1' });
    const b = await log.append(T + 1, 'engine', 'deployment.started', 'dep-1');
    expect(b.id).toBeGreaterThan(a.id);
    expect(a).toMatchObject({ user: 'alice', role: 'admin', source: '127.0.0.1', reason: 'new batch' });
    expect((await log.list()).map((r) => r.action)).toEqual(['deployment.started', 'devices.provisioned']);
    expect(await log.list({ user: 'alice' })).toEqual([a]);
    expect((await log.list({ subject: 'dep-1' })).map((r) => r.id)).toEqual([b.id]);
    expect((await log.list({ beforeId: b.id, limit: 1 })).map((r) => r.id)).toEqual([a.id]);
    expect(seen).toEqual(['devices.provisioned', 'deployment.started']);
    await sql.run('ALTER TABLE audit_log RENAME TO audit_log_away');
    log.appendLater(T + 2, 'engine', 'deployment.paused', 'dep-1');
    await expect.poll(() => failed).toEqual(['deployment.paused']);
    await sql.run('ALTER TABLE audit_log_away RENAME TO audit_log');
  });
});
