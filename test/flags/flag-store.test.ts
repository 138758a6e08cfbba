/**
 * The flag store on SQLite and PostgreSQL alike: its history and audit trail written in one
 * transaction per change, the in-memory view another coordinator's changes reach by reload(), the
 * device flags message, the admin API routes and the canary services wiring.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { FlagsMessageSchema } from '../../protocol/messages.js';
import { normalizedValue } from '../../protocol/flag-bucketing.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { AuditLog } from '../../coordinator/store/audit-log.js';
import { createAdminApi, type AdminApi } from '../../coordinator/admin/admin-api.js';
import { tokenAuthenticator } from '../../coordinator/users/access.js';
import { FlagStore, type FlagAudit, type FlagChange } from '../../coordinator/flags/flag-store.js';
import { CANARY_AI_FLAG, evaluateFlag, waveKey } from '../../coordinator/flags/flag-model.js';
import { registerFlagRoutes } from '../../coordinator/flags/flag-routes.js';
import { STORE_KINDS, openTestStore } from '../support/postgres.js';
import { ManualClock } from '../support/manual-clock.js';

/** Audit entries written with the change's own transaction, as the coordinator's audit log does. */
const auditInTx: FlagAudit = (tx, e) =>
  tx.run('INSERT INTO audit_log (at, actor, action, subject, detail_json) VALUES (?, ?, ?, ?, ?)', [e.at, e.actor, e.action, e.subject, JSON.stringify(e.detail)]);
const auditActions = async (sql: Sql): Promise<string[]> => (await sql.all<{ action: string }>('SELECT action FROM audit_log ORDER BY id DESC')).map((r) => r.action);

describe('flag evaluation', () => {
  it('kill switch wins over rollout; rollout follows Unleash buckets', () => {
    const def = { name: 'f', description: '', scope: 'coordinator' as const, enabled: true, rollout: 50, variants: [] };
    for (const key of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) {
      const e = evaluateFlag(def, key);
      expect(e.enabled).toBe(normalizedValue(key, 'f') <= 50);
      expect(evaluateFlag({ ...def, enabled: false }, key)).toMatchObject({ enabled: false, reason: 'killed' });
    }
  });
});

describe.each(STORE_KINDS)('flags on %s', (kind) => {
  let sql: Sql;
  let now = 1_800_000_000_000;
  let changes: FlagChange[];
  let store: FlagStore;

  beforeEach(async () => {
    sql = await openTestStore(kind);
    now = 1_800_000_000_000;
    changes = [];
    store = await FlagStore.load({ sql, now: () => now, audit: auditInTx, onChange: (c) => changes.push(c) });
  });

  describe('FlagStore', () => {
    it('lists well-known defaults: stat on, AI off', () => {
      const list = store.list();
      expect(list.find((f) => f.name === 'canary.stat')).toMatchObject({ enabled: true, stored: false });
      expect(list.find((f) => f.name === 'canary.ai')).toMatchObject({ enabled: false, stored: false });
      expect(store.evaluate('no.such.flag', 'k')).toMatchObject({ enabled: false, reason: 'default' });
    });

    it('sets, kills and deletes with monotonic versions, history and audit entries', async () => {
      const a = await store.set(CANARY_AI_FLAG, { enabled: true, rollout: 30 }, 'alice');
      expect(a).toMatchObject({ enabled: true, rollout: 30, updatedBy: 'alice' });
      expect(a.variants.map((v) => v.name)).toEqual(['stable', 'experimental']); // kept from the default
      now += 1000;
      const k = await store.kill(CANARY_AI_FLAG, 'bob');
      expect(k.enabled).toBe(false);
      expect(k.rollout).toBe(30);
      expect(k.version).toBeGreaterThan(a.version);
      expect(store.evaluate(CANARY_AI_FLAG, waveKey('dep-1', 0))).toMatchObject({ enabled: false, reason: 'killed' });
      const h = await store.history({ name: CANARY_AI_FLAG });
      expect(h.map((c) => [c.action, c.actor])).toEqual([['kill', 'bob'], ['set', 'alice']]);
      expect(h[0]!.before?.enabled).toBe(true);
      expect(h[0]!.after?.enabled).toBe(false);
      expect(await auditActions(sql)).toEqual(['flag.kill', 'flag.set']);
      expect(changes).toHaveLength(2);
      await store.delete(CANARY_AI_FLAG, 'carol');
      expect(store.get(CANARY_AI_FLAG)).toBeUndefined();
      expect(store.effective(CANARY_AI_FLAG)?.enabled).toBe(false); // back to the default
      expect(store.version()).toBe(3);
      // What memory says is what the store says: a fresh load agrees.
      const again = await FlagStore.load({ sql, now: () => now });
      expect(again.list()).toEqual(store.list());
      expect(again.version()).toBe(3);
    });

    it('rejects invalid definitions without writing anything', async () => {
      await expect(store.set('new.flag', { rollout: 20 }, 'alice')).rejects.toThrow(/enabled/);
      await expect(store.set('bad name!', { enabled: true }, 'alice')).rejects.toThrow(/flag names/);
      await expect(store.set('x', { enabled: true, rollout: 120 }, 'alice')).rejects.toThrow(/rollout/);
      await expect(store.kill('no.such.flag', 'alice')).rejects.toMatchObject({ code: 'not-found' });
      await expect(store.delete('no.such.flag', 'alice')).rejects.toMatchObject({ code: 'not-found' });
      expect(await store.history()).toHaveLength(0);
      expect(store.version()).toBe(0);
    });

    it('writes nothing, in the store or in memory, when the audit entry cannot be written', async () => {
      const failing = await FlagStore.load({ sql, now: () => now, audit: () => Promise.reject(new Error('audit log unavailable')), onChange: (c) => changes.push(c) });
      await expect(failing.set('coord.thing', { enabled: true }, 'ops')).rejects.toThrow('audit log unavailable');
      expect(failing.get('coord.thing')).toBeUndefined();
      expect(await failing.history()).toHaveLength(0);
      expect(await sql.all('SELECT name FROM flags')).toEqual([]);
      expect(changes).toEqual([]);
    });

    it('applies concurrent changes one after another, each on the one before', async () => {
      await Promise.all([
        store.set('coord.thing', { enabled: true }, 'a'),
        store.set('coord.thing', { rollout: 40 }, 'b'),
        store.set('coord.thing', { description: 'both' }, 'c'),
      ]);
      expect(store.get('coord.thing')).toMatchObject({ enabled: true, rollout: 40, description: 'both', version: 3 });
    });

    it("sees another coordinator's changes after reload(), and merges its own onto them", async () => {
      const other = await FlagStore.load({ sql, now: () => now });
      await other.set('coord.thing', { enabled: true, rollout: 10 }, 'elsewhere');
      expect(store.get('coord.thing')).toBeUndefined();
      await store.reload();
      expect(store.get('coord.thing')).toMatchObject({ enabled: true, rollout: 10, updatedBy: 'elsewhere' });
      await other.set('coord.thing', { rollout: 20 }, 'elsewhere');
      // Even before reloading, a change starts from the stored definition, not a stale copy.
      const mine = await store.set('coord.thing', { description: 'here' }, 'me');
      expect(mine).toMatchObject({ rollout: 20, description: 'here', version: 3 });
      expect(store.version()).toBe(3);
    });

    it('publishes only device-scope flags in the retained FlagsMessage', async () => {
      await store.set('agent.fast-telemetry', { enabled: true, rollout: 10, scope: 'device', variants: [{ name: 'x', weight: 1, payload: { a: 'b' } }] }, 'ops');
      await store.set('coord.only', { enabled: true }, 'ops');
      const msg = store.deviceFlagsMessage();
      expect(FlagsMessageSchema.parse(msg)).toEqual(msg);
      expect(Object.keys(msg.flags)).toEqual(['agent.fast-telemetry']);
      expect(msg.flags['agent.fast-telemetry']).toEqual({ enabled: true, rollout: 10, variants: [{ name: 'x', weight: 1 }] });
      expect(msg.version).toBe(store.version());
      expect(msg.at).toBe(now);
    });
  });

  describe('flag admin routes', () => {
    let api: AdminApi;
    let base: string;
    const token = 'test-token-0123456789abcdef';
    beforeEach(async () => {
      api = await createAdminApi({ authenticator: tokenAuthenticator(token) });
      registerFlagRoutes(api, { flags: store });
      base = await api.listen({ port: 0, host: '127.0.0.1' });
    });
    afterEach(async () => {
      await api.close();
    });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: res.status === 204 ? undefined : ((await res.json()) as Record<string, unknown>) };
    };

    it('lists, sets, evaluates and kills through HTTP', async () => {
      expect((await call('GET', '/v1/flags')).body?.['flags']).toHaveLength(2);
      const put = await call('PUT', '/v1/flags/canary.ai', { enabled: true, variants: [{ name: 'exp', weight: 1, payload: { promptId: 'risk-experimental-v2' } }] });
      expect(put.status).toBe(200);
      const ev = await call('GET', '/v1/flags/canary.ai/evaluate?key=dep-1:0');
      expect(ev.body).toMatchObject({ enabled: true, variant: { name: 'exp', payload: { promptId: 'risk-experimental-v2' } } });
      expect((await call('POST', '/v1/flags/canary.ai/kill')).body).toMatchObject({ enabled: false });
      const hist = await call('GET', '/v1/flags/canary.ai/history');
      expect((hist.body?.['changes'] as unknown[]).length).toBe(2);
      expect((await call('PUT', '/v1/flags/canary.ai', { rollout: 500 })).status).toBe(400);
      expect((await call('PUT', '/v1/flags/canary.ai', { bogus: 1 })).status).toBe(400);
      expect((await call('POST', '/v1/flags/nope/kill')).status).toBe(404);
      expect((await call('DELETE', '/v1/flags/canary.ai')).status).toBe(204);
      expect((await fetch(base + '/v1/flags')).status).toBe(401);
    });
  });

  describe('canary services wiring', () => {
    it('republishes the device flags on device-flag changes only, and picks analyzers from flags', async () => {
      const { createCanaryServices } = await import('../../coordinator/canary/canary-services.js');
      const published: number[] = [];
      // The coordinator's audit log, in the same store: each entry joins its change's transaction.
      const audit = new AuditLog(sql);
      const svc = await createCanaryServices({ sql, now: () => now, audit, env: {}, publishDeviceFlags: (m) => published.push(m.version) });
      await svc.flags.set('coord.thing', { enabled: true }, 'ops');
      expect(published).toEqual([]);
      await svc.flags.set('agent.thing', { enabled: true, scope: 'device' }, 'ops');
      await svc.flags.kill('agent.thing', 'ops');
      expect((await audit.list()).map((e) => [e.action, e.subject])).toEqual([['flag.kill', 'flag:agent.thing'], ['flag.set', 'flag:agent.thing'], ['flag.set', 'flag:coord.thing']]);
      expect(published).toEqual([2, 3]);
      expect(svc.ai).toBeUndefined();
      expect(svc.analyzersFor({ id: 'dep-1' }, 0).map((a) => a.name)).toEqual(['hard-gates', 'stat']);
    });

    it("re-reads the flags on a shared store, so another coordinator's kill reaches this gate", async () => {
      const { createCanaryServices } = await import('../../coordinator/canary/canary-services.js');
      const timers = new ManualClock(now);
      const svc = await createCanaryServices({ sql, now: () => now, env: {}, refresh: { timers, everyMs: 5_000, logger: pino({ level: 'silent' }) } });
      onTestFinished(() => svc.stop());
      const names = (): string[] => svc.analyzersFor({ id: 'dep-1' }, 0).map((a) => a.name);
      expect(names()).toEqual(['hard-gates', 'stat']);
      const other = await FlagStore.load({ sql, now: () => now });
      await other.set('canary.stat', { enabled: false }, 'elsewhere');
      expect(names()).toEqual(['hard-gates', 'stat']);
      timers.advance(5_000);
      await vi.waitFor(() => expect(names()).toEqual(['hard-gates']));
      // Stopped: no more re-reads (a due timer would call reload() within advance()).
      const reload = vi.spyOn(svc.flags, 'reload');
      svc.stop();
      timers.advance(60_000);
      expect(reload).not.toHaveBeenCalled();
    });
  });
});
