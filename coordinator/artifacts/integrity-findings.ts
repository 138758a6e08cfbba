/**
 * Integrity findings, recorded once in the store. Replicas sharing one artifacts directory each check
 * the images they serve (artifact-integrity.ts), so a damaged image is found by every replica that
 * uses it — and again by a coordinator after a restart. The first to record a finding (the image's
 * state, damaged for a reason or whole again) writes the audit entry, in the same transaction; the
 * others find it recorded and write nothing. I/O shell (the store).
 */
import type { Migration, PostgresMigration } from '../store/migrations.js';
import type { Sql, SqlQueries } from '../store/sql.js';
import type { IntegrityView } from './artifact-integrity.js';

/** SQLite: in the store's range (1–99). */
export const FINDING_MIGRATIONS: readonly Migration[] = [
  {
    version: 20,
    name: 'artifact-findings',
    up(db) {
      db.exec('CREATE TABLE artifact_findings (sha256 TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, at INTEGER NOT NULL)');
    },
  },
];

export const FINDING_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 20,
    name: 'artifact-findings',
    sql: 'CREATE TABLE artifact_findings (sha256 TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, at BIGINT NOT NULL)',
  },
];

// A row only when it was inserted or changed: the same finding already recorded updates nothing. Two
// replicas claiming at once are ordered by the primary key; the second sees the first's row.
const CLAIM = `INSERT INTO artifact_findings (sha256, status, reason, at) VALUES (?, ?, ?, ?)
  ON CONFLICT (sha256) DO UPDATE SET status = excluded.status, reason = excluded.reason, at = excluded.at
  WHERE artifact_findings.status <> excluded.status OR COALESCE(artifact_findings.reason, '') <> COALESCE(excluded.reason, '')
  RETURNING sha256`;

export class IntegrityFindings {
  constructor(private readonly sql: Sql) {}

  /**
   * Records a finding about an image unless it is recorded already; `first` runs (in the same
   * transaction) only for the one that records it. Resolves true when this call recorded it.
   */
  async record(sha256: string, view: IntegrityView, at: number, first: (tx: SqlQueries) => Promise<unknown>): Promise<boolean> {
    return this.sql.transaction(async (tx) => {
      const row = await tx.get<{ sha256: string }>(CLAIM, [sha256, view.status, view.reason ?? null, at]);
      if (!row) return false;
      await first(tx);
      return true;
    });
  }
}
