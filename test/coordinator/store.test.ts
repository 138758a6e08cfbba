import { describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase } from '../../coordinator/store/db.js';
import { applyMigrations, currentSchemaVersion, MigrationError, type Migration } from '../../coordinator/store/migrations.js';
import { ALL_MIGRATIONS } from '../../coordinator/store/migration-list.js';
import { tempDbPath as dbPath } from './helpers.js';


describe('store', () => {
  it('opens in WAL mode and applies every migration once, recording versions', () => {
    const path = dbPath();
    const db = openDatabase(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const versions = (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
    expect(versions).toEqual(ALL_MIGRATIONS.map((m) => m.version));
    expect(currentSchemaVersion(db)).toBe(ALL_MIGRATIONS[ALL_MIGRATIONS.length - 1]!.version);
    // Applying again does nothing.
    expect(applyMigrations(db, ALL_MIGRATIONS)).toEqual([]);
    closeDatabase(db);
    closeDatabase(db); // safe twice
  });

  it('keeps data across a restart on the same file', () => {
    const path = dbPath();
    const db = openDatabase(path);
    db.prepare("INSERT INTO devices (device_id, bucket, tags) VALUES ('dev-1', 7, '[]')").run();
    closeDatabase(db);
    const again = openDatabase(path);
    expect(again.prepare('SELECT bucket FROM devices WHERE device_id = ?').get('dev-1')).toEqual({ bucket: 7 });
    closeDatabase(again);
  });

  it('rolls back a failing migration and leaves the version where it was', () => {
    const path = dbPath();
    const list: Migration[] = [
      { version: 1, name: 'one', up: (db) => db.exec('CREATE TABLE a (x INTEGER)') },
      {
        version: 2,
        name: 'broken',
        up: (db) => {
          db.exec('CREATE TABLE b (x INTEGER)');
          throw new Error('boom');
        },
      },
    ];
    expect(() => openDatabase(path, { migrations: list })).toThrow(MigrationError);
    const db = openDatabase(path, { migrations: list.slice(0, 1) });
    expect(currentSchemaVersion(db)).toBe(1);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").get()).toBeUndefined();
    closeDatabase(db);
  });

  it('refuses a database written by a newer build and a mis-ordered list', () => {
    const path = dbPath();
    const newer: Migration[] = [
      { version: 1, name: 'one', up: () => undefined },
      { version: 2, name: 'two', up: () => undefined },
    ];
    closeDatabase(openDatabase(path, { migrations: newer }));
    expect(() => openDatabase(path, { migrations: newer.slice(0, 1) })).toThrow(/newer fleet/);
    expect(() => openDatabase(dbPath(), { migrations: [newer[1]!, newer[0]!] })).toThrow(/higher version/);
  });
});
