/** The SQLite flag store, its audit trail, the device flags message and the admin API routes. */
import { SqliteSql } from '../../coordinator/store/sqlite-sql.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FlagsMessageSchema } from '../../protocol/messages.js';
import { normalizedValue } from '../../protocol/flag-bucketing.js';
import { closeDatabase, openDatabase, type Db } from '../../coordinator/store/db.js';
import { STORE_MIGRATIONS } from '../../coordinator/store/schema.js';
import { AuditLog } from '../../coordinator/store/audit-log.js';
import { createAdminApi, type AdminApi } from '../../coordinator/admin/admin-api.js';
import { tokenAuthenticator } from '../../coordinator/users/access.js';
import { FLAG_MIGRATIONS } from '../../coordinator/flags/flag-migrations.js';
import { FlagStore, type FlagChange } from '../../coordinator/flags/flag-store.js';
import { CANARY_AI_FLAG, evaluateFlag, waveKey } from '../../coordinator/flags/flag-model.js';
import { registerFlagRoutes } from '../../coordinator/flags/flag-routes.js';

let db: Db;
let now = 1_800_000_000_000;
let changes: FlagChange[];
let store: FlagStore;
let audit: AuditLog;

beforeEach(() => {
  db = openDatabase(':memory:', { migrations: [...STORE_MIGRATIONS, ...FLAG_MIGRATIONS] });
  changes = [];
  audit = new AuditLog(new SqliteSql(db));
  store = new FlagStore({ db, now: () => now, audit, onChange: (c) => changes.push(c) });
});
afterEach(() => closeDatabase(db));

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

describe('FlagStore', () => {
  it('lists well-known defaults: stat on, AI off', () => {
    const list = store.list();
    expect(list.find((f) => f.name === 'canary.stat')).toMatchObject({ enabled: true, stored: false });
    expect(list.find((f) => f.name === 'canary.ai')).toMatchObject({ enabled: false, stored: false });
    expect(store.evaluate('no.such.flag', 'k')).toMatchObject({ enabled: false, reason: 'default' });
  });

  it('sets, kills and deletes with monotonic versions, history and audit entries', async () => {
    const a = store.set(CANARY_AI_FLAG, { enabled: true, rollout: 30 }, 'alice');
    expect(a).toMatchObject({ enabled: true, rollout: 30, updatedBy: 'alice' });
    expect(a.variants.map((v) => v.name)).toEqual(['stable', 'experimental']); // kept from the default
    now += 1000;
    const k = store.kill(CANARY_AI_FLAG, 'bob');
    expect(k.enabled).toBe(false);
    expect(k.rollout).toBe(30);
    expect(k.version).toBeGreaterThan(a.version);
    expect(store.evaluate(CANARY_AI_FLAG, waveKey('dep-1', 0))).toMatchObject({ enabled: false, reason: 'killed' });
    const h = store.history({ name: CANARY_AI_FLAG });
    expect(h.map((c) => [c.action, c.actor])).toEqual([['kill', 'bob'], ['set', 'alice']]);
    expect(h[0]!.before?.enabled).toBe(true);
    expect(h[0]!.after?.enabled).toBe(false);
    expect((await audit.list()).map((e) => e.action)).toEqual(['flag.kill', 'flag.set']);
    expect(changes).toHaveLength(2);
    store.delete(CANARY_AI_FLAG, 'carol');
    expect(store.get(CANARY_AI_FLAG)).toBeUndefined();
    expect(store.effective(CANARY_AI_FLAG)?.enabled).toBe(false); // back to the default
    expect(store.version()).toBe(3);
  });

  it('rejects invalid definitions without writing anything', () => {
    expect(() => store.set('new.flag', { rollout: 20 }, 'alice')).toThrow(/enabled/);
    expect(() => store.set('bad name!', { enabled: true }, 'alice')).toThrow(/flag names/);
    expect(() => store.set('x', { enabled: true, rollout: 120 }, 'alice')).toThrow(/rollout/);
    expect(store.history()).toHaveLength(0);
  });

  it('publishes only device-scope flags in the retained FlagsMessage', () => {
    store.set('agent.fast-telemetry', { enabled: true, rollout: 10, scope: 'device', variants: [{ name: 'x', weight: 1, payload: { a: 'b' } }] }, 'ops');
    store.set('coord.only', { enabled: true }, 'ops');
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
    const svc = createCanaryServices({ db, now: () => now, audit, env: {}, publishDeviceFlags: (m) => published.push(m.version) });
    svc.flags.set('coord.thing', { enabled: true }, 'ops');
    expect(published).toEqual([]);
    svc.flags.set('agent.thing', { enabled: true, scope: 'device' }, 'ops');
    svc.flags.kill('agent.thing', 'ops');
    expect(published).toEqual([2, 3]);
    expect(svc.ai).toBeUndefined();
    expect(svc.analyzersFor({ id: 'dep-1' }, 0).map((a) => a.name)).toEqual(['hard-gates', 'stat']);
  });
});
