/**
 * The Sql interface on both drivers: portable statements, numbers back as numbers, transactions that
 * commit or roll back as a whole, statements from outside a transaction never joining it, migrations
 * applied once (also with two coordinators migrating at once on PostgreSQL).
 */
import { describe, expect, it } from 'vitest';
import { STORE_KINDS, freshPostgresUrl, openTestStore } from '../support/postgres.js';
import { openPostgresStore } from '../../coordinator/store/open-store.js';
import { SqlError, toPostgresPlaceholders } from '../../coordinator/store/sql.js';
import { PostgresSql } from '../../coordinator/store/postgres-sql.js';

describe('toPostgresPlaceholders', () => {
  it('numbers ? outside quotes', () => {
    expect(toPostgresPlaceholders("SELECT ? , '?' , \"a?\" , ?")).toBe("SELECT $1 , '?' , \"a?\" , $2");
  });
});

describe.each(STORE_KINDS)('Sql on %s', (kind) => {
  it('round-trips values and counts rows', async () => {
    const db = await openTestStore(kind);
    await db.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['a', 1_700_000_000_000]);
    await db.run('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value', ['a', 5]);
    const row = await db.get<{ name: string; value: number }>('SELECT name, value FROM counters WHERE name = ?', ['a']);
    expect(row).toEqual({ name: 'a', value: 1_700_000_000_005 });
    const agg = await db.get<{ n: number; total: number }>('SELECT COUNT(*) AS n, SUM(value) AS total FROM counters');
    expect(agg).toEqual({ n: 1, total: 1_700_000_000_005 });
    expect(await db.get('SELECT value FROM counters WHERE name = ?', ['none'])).toBeUndefined();
    expect((await db.run('DELETE FROM counters WHERE name = ?', ['a'])).changes).toBe(1);
    const bytes = Buffer.from([0, 1, 2, 255]);
    await db.run('INSERT INTO retained_messages (topic, payload, qos, updated_at) VALUES (?, ?, ?, ?)', ['t', bytes, 1, 2]);
    expect((await db.get<{ payload: Buffer }>('SELECT payload FROM retained_messages'))!.payload.equals(bytes)).toBe(true);
    const id = await db.get<{ id: number }>(
      'INSERT INTO audit_log (at, actor, action, "user") VALUES (?, ?, ?, ?) RETURNING id',
      [1, 'me', 'test', 'alice'],
    );
    expect(typeof id!.id).toBe('number');
  });

  it('commits a transaction as a whole, or rolls it back', async () => {
    const db = await openTestStore(kind);
    await db.transaction(async (tx) => {
      await tx.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['x', 1]);
      await tx.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['y', 2]);
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['z', 3]);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const names = (await db.all<{ name: string }>('SELECT name FROM counters ORDER BY name')).map((r) => r.name);
    expect(names).toEqual(['x', 'y']);
  });

  it('keeps statements from outside a transaction out of it', async () => {
    const db = await openTestStore(kind);
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    let finish!: () => void;
    const held = new Promise<void>((r) => (finish = r));
    const tx = db
      .transaction(async (t) => {
        await t.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['in-tx', 1]);
        entered();
        await held;
        throw new Error('roll back');
      })
      .catch(() => 'rolled back');
    await inside;
    const outside = db.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['outside', 1]);
    finish();
    expect(await tx).toBe('rolled back');
    await outside;
    const names = (await db.all<{ name: string }>('SELECT name FROM counters ORDER BY name')).map((r) => r.name);
    expect(names).toEqual(['outside']);
  });

  it('runs queued transactions one after another', async () => {
    const db = await openTestStore(kind);
    await db.run('INSERT INTO counters (name, value) VALUES (?, ?)', ['n', 0]);
    await Promise.all(
      Array.from({ length: 20 }, () =>
        db.transaction(async (tx) => {
          // Row lock on PostgreSQL, the single writer on SQLite: no lost update either way.
          const row = await tx.get<{ value: number }>(`SELECT value FROM counters WHERE name = ?${kind === 'postgres' ? ' FOR UPDATE' : ''}`, ['n']);
          await tx.run('UPDATE counters SET value = ? WHERE name = ?', [row!.value + 1, 'n']);
        }),
      ),
    );
    expect(await db.get('SELECT value FROM counters WHERE name = ?', ['n'])).toEqual({ value: 20 });
  });
});

describe('PostgreSQL store', () => {
  it('migrates once when two coordinators open one database at the same moment', async () => {
    const url = await freshPostgresUrl();
    const [a, b] = await Promise.all([openPostgresStore(url), openPostgresStore(url)]);
    try {
      const versions = await a.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(versions.length).toBeGreaterThan(0);
      expect(new Set(versions.map((v) => v.version)).size).toBe(versions.length);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('says which server it cannot reach, without the password', async () => {
    const err = await PostgresSql.open('postgres://fleet:s3cret@127.0.0.1:1/fleet').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SqlError);
    expect((err as Error).message).toMatch(/cannot reach PostgreSQL at postgres:\/\/fleet:\*\*\*@127\.0\.0\.1:1\/fleet/);
    expect((err as Error).message).not.toContain('s3cret');
  });
});
