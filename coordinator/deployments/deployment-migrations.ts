/**
 * Deployment persistence's tables (schema versions 100–199): deployments, their waves, per-device progress
 * and gate decisions. Listed in coordinator/store/migration-list.ts. Pure data (SQL run by the store).
 */
import type { Migration } from '../store/migrations.js';

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

