/**
 * The store's own tables (versions 1–99): devices and their credentials, artifacts, the audit log,
 * retained messages, gate snapshots, the status inbox. Telemetry was here until version 9 moved it to
 * telemetry.db.
 * Engine, flag and canary tables are contributed by those modules (see migration-list.ts).
 */
import type { Migration } from './migrations.js';

export const STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'devices',
    up(db) {
      db.exec(`
        CREATE TABLE devices (
          device_id TEXT PRIMARY KEY,
          hardware_model TEXT,
          firmware_version TEXT,
          active_slot TEXT,
          agent_version TEXT,
          bucket INTEGER NOT NULL,
          tags TEXT NOT NULL DEFAULT '[]',
          security_floor INTEGER NOT NULL DEFAULT 0,
          online INTEGER NOT NULL DEFAULT 0,
          first_seen INTEGER,
          last_seen INTEGER,
          last_hello INTEGER,
          boot_count INTEGER,
          provisioned_at INTEGER,
          update_json TEXT
        );
        CREATE INDEX devices_model_version ON devices (hardware_model, firmware_version);
        CREATE TABLE device_credentials (
          device_id TEXT PRIMARY KEY,
          -- scrypt$N$r$p$salt(b64)$hash(b64); the password itself is never stored
          secret_hash TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          revoked INTEGER NOT NULL DEFAULT 0
        );
      `);
    },
  },
  {
    version: 2,
    name: 'artifacts',
    up(db) {
      db.exec(`
        CREATE TABLE artifacts (
          sha256 TEXT NOT NULL,
          firmware_version TEXT NOT NULL,
          hardware TEXT NOT NULL,
          size INTEGER NOT NULL,
          file_name TEXT NOT NULL,
          manifest_json TEXT NOT NULL,
          offline_signed INTEGER NOT NULL DEFAULT 0,
          uploaded_at INTEGER NOT NULL,
          PRIMARY KEY (firmware_version)
        );
        CREATE INDEX artifacts_sha ON artifacts (sha256);
      `);
    },
  },
  {
    version: 3,
    name: 'telemetry',
    up(db) {
      db.exec(`
        CREATE TABLE telemetry_raw (
          device_id TEXT NOT NULL,
          at INTEGER NOT NULL,
          firmware_version TEXT NOT NULL,
          cpu REAL, mem REAL, temp REAL, battery REAL, power REAL, boot_time REAL
        );
        CREATE INDEX telemetry_raw_device_at ON telemetry_raw (device_id, at);
        CREATE INDEX telemetry_raw_at ON telemetry_raw (at);
        CREATE TABLE telemetry_rollup (
          device_id TEXT NOT NULL,
          slot_start INTEGER NOT NULL,
          firmware_version TEXT NOT NULL,
          samples INTEGER NOT NULL,
          first_at INTEGER NOT NULL,
          last_at INTEGER NOT NULL,
          exposure_ms INTEGER NOT NULL,
          crashes INTEGER NOT NULL, errors INTEGER NOT NULL, reboots INTEGER NOT NULL, agent_restarts INTEGER NOT NULL,
          -- per metric: n, sum, sumsq, max, st, stt, sty (t in hours from slot_start)
          metrics_json TEXT NOT NULL,
          error_lines TEXT NOT NULL DEFAULT '[]',
          PRIMARY KEY (device_id, slot_start, firmware_version)
        );
        CREATE INDEX telemetry_rollup_slot ON telemetry_rollup (slot_start);
        CREATE TABLE device_counters (
          device_id TEXT PRIMARY KEY,
          at INTEGER NOT NULL,
          seq INTEGER NOT NULL,
          crashes INTEGER NOT NULL, errors INTEGER NOT NULL, reboots INTEGER NOT NULL, agent_restarts INTEGER NOT NULL
        );
      `);
    },
  },
  {
    version: 4,
    name: 'audit',
    up(db) {
      db.exec(`
        CREATE TABLE audit_log (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          at INTEGER NOT NULL,
          actor TEXT NOT NULL,
          action TEXT NOT NULL,
          subject TEXT,
          detail_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_at ON audit_log (at);
        CREATE TABLE counters (
          name TEXT PRIMARY KEY,
          value INTEGER NOT NULL
        );
      `);
    },
  },
  {
    version: 5,
    name: 'retained-messages',
    up(db) {
      // What the coordinator has published retained (rollout manifests, flags): the embedded broker
      // keeps retained messages in memory, so they are re-published from here after a restart.
      db.exec(`
        CREATE TABLE retained_messages (
          topic TEXT PRIMARY KEY,
          payload BLOB NOT NULL,
          qos INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        );
      `);
    },
  },
  {
    version: 6,
    name: 'gate-snapshots',
    up(db) {
      // The canary snapshot each gate judged, keyed by the digest its decision records, so every
      // decision can be replayed offline with its exact inputs (`fleet canary judge --input`).
      db.exec(`
        CREATE TABLE gate_snapshots (
          digest TEXT PRIMARY KEY,
          deployment_id TEXT NOT NULL,
          wave INTEGER NOT NULL,
          taken_at INTEGER NOT NULL,
          snapshot_json TEXT NOT NULL
        );
        CREATE INDEX gate_snapshots_deployment ON gate_snapshots (deployment_id, wave);
      `);
    },
  },
  {
    version: 7,
    name: 'status-inbox',
    up(db) {
      // Every device status is written here before its PUBACK goes out, then fed to the engine. If the
      // coordinator dies in between, the start-up replay feeds it again (the engine ignores duplicates
      // by sequence number), so no acknowledged status is lost.
      db.exec(`
        CREATE TABLE status_inbox (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          device_id TEXT NOT NULL,
          deployment_id TEXT NOT NULL,
          seq INTEGER NOT NULL,
          received_at INTEGER NOT NULL,
          message_json TEXT NOT NULL
        );
        CREATE INDEX status_inbox_received ON status_inbox (received_at);
      `);
    },
  },
  {
    version: 8,
    name: 'operator-tags',
    up(db) {
      // Operator tags (provisioning) kept apart from the device's own (hello), which used to overwrite
      // them: `tags` now holds the reported tags only. A device that never said hello still carries
      // its provisioning tags in `tags`: those move over.
      db.exec(`
        ALTER TABLE devices ADD COLUMN operator_tags TEXT NOT NULL DEFAULT '[]';
        UPDATE devices SET operator_tags = tags, tags = '[]' WHERE last_hello IS NULL;
      `);
    },
  },
  {
    version: 9,
    name: 'telemetry-moved',
    up(db) {
      // Telemetry lives in telemetry.db now (coordinator/telemetry/telemetry-schema.ts), written by its
      // own thread; the coordinator copied these tables there (legacy-import.ts) before this ran.
      db.exec(`
        DROP TABLE IF EXISTS telemetry_raw;
        DROP TABLE IF EXISTS telemetry_rollup;
        DROP TABLE IF EXISTS device_counters;
      `);
    },
  },
  {
    version: 10,
    name: 'audit-who',
    up(db) {
      // Who acted (the signed-in user, their role, the source address) and the reason they gave; empty
      // for entries the coordinator itself made (gate, engine) and for entries older than named users.
      db.exec(`
        ALTER TABLE audit_log ADD COLUMN user TEXT;
        ALTER TABLE audit_log ADD COLUMN role TEXT;
        ALTER TABLE audit_log ADD COLUMN source TEXT;
        ALTER TABLE audit_log ADD COLUMN reason TEXT;
        CREATE INDEX audit_log_subject ON audit_log (subject, id);
        CREATE INDEX audit_log_user ON audit_log (user, id);
      `);
    },
  },
];
