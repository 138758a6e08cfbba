/**
 * The store's own tables on PostgreSQL (versions 1–99): the shape schema.ts's SQLite migrations
 * reached at version 10, in one migration. Types: every integer is BIGINT (milliseconds since the epoch
 * overflow INTEGER), REAL is DOUBLE PRECISION, BLOB is BYTEA, AUTOINCREMENT is BIGSERIAL. `user` is a
 * reserved word in PostgreSQL: queries quote it ("user"), which SQLite accepts too.
 */
import type { PostgresMigration } from './migrations.js';

export const STORE_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 10,
    name: 'store',
    sql: `
      CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        hardware_model TEXT,
        firmware_version TEXT,
        active_slot TEXT,
        agent_version TEXT,
        bucket BIGINT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        operator_tags TEXT NOT NULL DEFAULT '[]',
        security_floor BIGINT NOT NULL DEFAULT 0,
        online BIGINT NOT NULL DEFAULT 0,
        first_seen BIGINT,
        last_seen BIGINT,
        last_hello BIGINT,
        boot_count BIGINT,
        provisioned_at BIGINT,
        update_json TEXT
      );
      CREATE INDEX devices_model_version ON devices (hardware_model, firmware_version);
      CREATE TABLE device_credentials (
        device_id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked BIGINT NOT NULL DEFAULT 0
      );
      CREATE TABLE artifacts (
        sha256 TEXT NOT NULL,
        firmware_version TEXT NOT NULL PRIMARY KEY,
        hardware TEXT NOT NULL,
        size BIGINT NOT NULL,
        file_name TEXT NOT NULL,
        manifest_json TEXT NOT NULL,
        offline_signed BIGINT NOT NULL DEFAULT 0,
        uploaded_at BIGINT NOT NULL
      );
      CREATE INDEX artifacts_sha ON artifacts (sha256);
      CREATE TABLE audit_log (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT,
        detail_json TEXT NOT NULL DEFAULT '{}',
        "user" TEXT,
        role TEXT,
        source TEXT,
        reason TEXT
      );
      CREATE INDEX audit_log_at ON audit_log (at);
      CREATE INDEX audit_log_subject ON audit_log (subject, id);
      CREATE INDEX audit_log_user ON audit_log ("user", id);
      CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
      );
      CREATE TABLE retained_messages (
        topic TEXT PRIMARY KEY,
        payload BYTEA NOT NULL,
        qos BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE TABLE gate_snapshots (
        digest TEXT PRIMARY KEY,
        deployment_id TEXT NOT NULL,
        wave BIGINT NOT NULL,
        taken_at BIGINT NOT NULL,
        snapshot_json TEXT NOT NULL
      );
      CREATE INDEX gate_snapshots_deployment ON gate_snapshots (deployment_id, wave);
      CREATE TABLE status_inbox (
        id BIGSERIAL PRIMARY KEY,
        device_id TEXT NOT NULL,
        deployment_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        received_at BIGINT NOT NULL,
        message_json TEXT NOT NULL
      );
      CREATE INDEX status_inbox_received ON status_inbox (received_at);
    `,
  },
];
