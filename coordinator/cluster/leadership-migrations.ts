/**
 * PostgreSQL schema of replicated coordinators (range 900–999, PostgreSQL only: a SQLite store has one
 * coordinator, which always leads). `leadership` is one row: the current term (epoch), who holds it,
 * where its admin API is, its session's backend pid and its last heartbeat in the server's clock.
 * Triggers tell every replica, through NOTIFY, that a status reached the inbox, a device or its
 * credentials changed (not a secret's hash moved to its fast form), or an artifact was uploaded,
 * whoever wrote it (docs/replication.md). Pure data.
 */
import type { PostgresMigration } from '../store/migrations.js';

/** NOTIFY channel: a status was stored in the inbox (payload empty). */
export const INBOX_CHANNEL = 'fleet_status_inbox';
/** NOTIFY channel: a device's row changed (payload: the device id). */
export const DEVICE_CHANNEL = 'fleet_device_changed';
/** NOTIFY channel: a device's credentials were provisioned, rotated or revoked (payload: the device id). */
export const CREDENTIALS_CHANNEL = 'fleet_credentials_changed';
/** NOTIFY channel: an artifact was recorded or removed (payload: its firmware version). */
export const ARTIFACT_CHANNEL = 'fleet_artifact_changed';

export const LEADERSHIP_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 900,
    name: 'leadership',
    sql: `
      CREATE TABLE leadership (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch BIGINT NOT NULL,
        leader_id TEXT,
        admin_url TEXT,
        backend_pid INTEGER,
        renewed_at BIGINT
      );
      INSERT INTO leadership (id, epoch) VALUES (1, 0);
    `,
  },
  {
    version: 901,
    name: 'replica notifications',
    sql: `
      CREATE FUNCTION fleet_notify_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('${INBOX_CHANNEL}', '');
        RETURN NULL;
      END $$;
      CREATE TRIGGER status_inbox_notify AFTER INSERT ON status_inbox
        FOR EACH STATEMENT EXECUTE FUNCTION fleet_notify_inbox();
      CREATE FUNCTION fleet_notify_device() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' THEN
          PERFORM pg_notify('${DEVICE_CHANNEL}', OLD.device_id);
        ELSIF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - 'last_seen') = (to_jsonb(NEW) - 'last_seen') THEN
          -- Only last_seen moved (every device message does that): nothing a replica caches.
          NULL;
        ELSE
          PERFORM pg_notify('${DEVICE_CHANNEL}', NEW.device_id);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER devices_notify AFTER INSERT OR UPDATE OR DELETE ON devices
        FOR EACH ROW EXECUTE FUNCTION fleet_notify_device();
      CREATE TRIGGER device_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON device_credentials
        FOR EACH ROW EXECUTE FUNCTION fleet_notify_device();
      CREATE FUNCTION fleet_notify_artifact() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('${ARTIFACT_CHANNEL}', COALESCE(NEW.firmware_version, OLD.firmware_version));
        RETURN NULL;
      END $$;
      CREATE TRIGGER artifacts_notify AFTER INSERT OR UPDATE OR DELETE ON artifacts
        FOR EACH ROW EXECUTE FUNCTION fleet_notify_artifact();
    `,
  },
  {
    version: 902,
    name: 'credential notifications',
    // Credentials get their own channel: a replica forgets the secrets it verified for a device on a
    // credential change only, not on every hello or presence change of its row.
    sql: `
      DROP TRIGGER device_credentials_notify ON device_credentials;
      CREATE FUNCTION fleet_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('${CREDENTIALS_CHANNEL}', COALESCE(NEW.device_id, OLD.device_id));
        RETURN NULL;
      END $$;
      CREATE TRIGGER device_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON device_credentials
        FOR EACH ROW EXECUTE FUNCTION fleet_notify_credentials();
    `,
  },
  {
    version: 903,
    name: 'credential upgrades are no change',
    // A scrypt hash replaced by the fast form of the same secret (credentials.ts, which marks its
    // transaction with fleet.credential_upgrade) changes nothing a replica caches: told, every replica
    // would close the device's session — the one that just logged in among them.
    sql: `
      CREATE OR REPLACE FUNCTION fleet_notify_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'UPDATE' AND current_setting('fleet.credential_upgrade', true) = 'on'
          AND (to_jsonb(OLD) - 'secret_hash') = (to_jsonb(NEW) - 'secret_hash') THEN
          RETURN NULL;
        END IF;
        PERFORM pg_notify('${CREDENTIALS_CHANNEL}', COALESCE(NEW.device_id, OLD.device_id));
        RETURN NULL;
      END $$;
    `,
  },
];
