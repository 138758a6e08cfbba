/**
 * Deployment persistence's tables (schema versions 100–199): deployments, their waves, per-device progress
 * and gate decisions, for SQLite and for PostgreSQL. Listed in coordinator/store/migration-list.ts.
 * Pure data (SQL run by the store).
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';

export const DEPLOYMENT_MIGRATIONS: readonly Migration[] = [
  {
    version: 100,
    name: 'deployments',
    up(db) {
      db.exec(`
        CREATE TABLE deployments (
          id TEXT PRIMARY KEY,
          phase TEXT NOT NULL,
          firmware_version TEXT NOT NULL,
          hardware_models TEXT NOT NULL,
          current_wave INTEGER NOT NULL,
          revision INTEGER NOT NULL,
          created_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          core_json TEXT NOT NULL
        );
        CREATE INDEX deployments_phase ON deployments (phase);
        CREATE TABLE deployment_waves (
          deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
          wave_index INTEGER NOT NULL,
          percent REAL NOT NULL,
          status TEXT NOT NULL,
          started_at INTEGER,
          completed_at INTEGER,
          verdict TEXT,
          counts_json TEXT NOT NULL,
          PRIMARY KEY (deployment_id, wave_index)
        );
        CREATE TABLE deployment_devices (
          deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
          device_id TEXT NOT NULL,
          bucket INTEGER NOT NULL,
          wave INTEGER NOT NULL,
          state TEXT NOT NULL,
          reason TEXT,
          timed_out INTEGER NOT NULL,
          rollback_status TEXT,
          updated_at INTEGER NOT NULL,
          progress_json TEXT NOT NULL,
          PRIMARY KEY (deployment_id, device_id)
        );
        CREATE INDEX deployment_devices_device ON deployment_devices (device_id);
        CREATE INDEX deployment_devices_wave ON deployment_devices (deployment_id, wave);
        CREATE TABLE decisions (
          id TEXT PRIMARY KEY,
          deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
          wave INTEGER NOT NULL,
          attempt INTEGER NOT NULL,
          at INTEGER NOT NULL,
          source TEXT NOT NULL,
          recommendation TEXT NOT NULL,
          rule TEXT NOT NULL,
          inputs_digest TEXT NOT NULL,
          record_json TEXT NOT NULL
        );
        CREATE INDEX decisions_deployment ON decisions (deployment_id, at);
      `);
    },
  },
];


/**
 * The same tables on PostgreSQL, at the shape SQLite's list reached (store/schema-postgres.ts has the
 * type rules). `decisions.seq` stands in for SQLite's rowid: decisions at the same instant keep the
 * order they were recorded in.
 */
export const DEPLOYMENT_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 100,
    name: 'deployments',
    sql: `
      CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        phase TEXT NOT NULL,
        firmware_version TEXT NOT NULL,
        hardware_models TEXT NOT NULL,
        current_wave BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        core_json TEXT NOT NULL
      );
      CREATE INDEX deployments_phase ON deployments (phase);
      CREATE TABLE deployment_waves (
        deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
        wave_index BIGINT NOT NULL,
        percent DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL,
        started_at BIGINT,
        completed_at BIGINT,
        verdict TEXT,
        counts_json TEXT NOT NULL,
        PRIMARY KEY (deployment_id, wave_index)
      );
      CREATE TABLE deployment_devices (
        deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
        device_id TEXT NOT NULL,
        bucket BIGINT NOT NULL,
        wave BIGINT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        timed_out BIGINT NOT NULL,
        rollback_status TEXT,
        updated_at BIGINT NOT NULL,
        progress_json TEXT NOT NULL,
        PRIMARY KEY (deployment_id, device_id)
      );
      CREATE INDEX deployment_devices_device ON deployment_devices (device_id);
      CREATE INDEX deployment_devices_wave ON deployment_devices (deployment_id, wave);
      CREATE TABLE decisions (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
        wave BIGINT NOT NULL,
        attempt BIGINT NOT NULL,
        at BIGINT NOT NULL,
        source TEXT NOT NULL,
        recommendation TEXT NOT NULL,
        rule TEXT NOT NULL,
        inputs_digest TEXT NOT NULL,
        record_json TEXT NOT NULL
      );
      CREATE INDEX decisions_deployment ON decisions (deployment_id, at);
    `,
  },
];
