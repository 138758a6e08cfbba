/**
 * The one ordered list of every schema migration. Modules export their migrations; add them here.
 * Version ranges by owner (keep them apart so parallel work never collides):
 *   1–99     coordinator/store (devices, credentials, artifacts, telemetry, audit, retained messages);
 *            20–29 of them: artifact integrity findings (coordinator/artifacts/integrity-findings.ts);
 *            60–69 of them: counter totals (coordinator/counter-totals.ts)
 *   100–199  coordinator/deployments (deployments, waves, device progress, decisions)
 *   200–299  coordinator/flags and coordinator/canary
 *   300–399  coordinator/deployments (freshness counters for signed manifests and commands)
 *   400–499  coordinator/registry (device anomalies)
 *   500–599  coordinator/users (named users, API tokens, web sessions)
 *   700–799  coordinator/webhooks (webhooks, deliveries, attempts)
 *   800–899  coordinator/telemetry (PostgreSQL only: SQLite keeps telemetry in its own file)
 *   900–999  coordinator/cluster (PostgreSQL only: leadership of replicated coordinators, notifications)
 */
import type { Migration, PostgresMigration } from './migrations.js';
import { STORE_POSTGRES_MIGRATIONS } from './schema-postgres.js';
import { STORE_MIGRATIONS } from './schema.js';
import { DEPLOYMENT_MIGRATIONS, DEPLOYMENT_POSTGRES_MIGRATIONS } from '../deployments/deployment-migrations.js';
import { FLAG_MIGRATIONS, FLAG_POSTGRES_MIGRATIONS } from '../flags/flag-migrations.js';
import { COUNTER_MIGRATIONS, COUNTER_POSTGRES_MIGRATIONS } from '../counter-totals.js';
import { FRESHNESS_MIGRATIONS, FRESHNESS_POSTGRES_MIGRATIONS } from '../deployments/freshness-counters.js';
import { REGISTRY_MIGRATIONS, REGISTRY_POSTGRES_MIGRATIONS } from '../registry/registry-migrations.js';
import { USER_MIGRATIONS, USER_POSTGRES_MIGRATIONS } from '../users/user-migrations.js';
import { WEBHOOK_MIGRATIONS, WEBHOOK_POSTGRES_MIGRATIONS } from '../webhooks/webhook-store.js';
import { TELEMETRY_POSTGRES_MIGRATIONS } from '../telemetry/telemetry-schema-postgres.js';
import { LEADERSHIP_POSTGRES_MIGRATIONS } from '../cluster/leadership-migrations.js';
import { FINDING_MIGRATIONS, FINDING_POSTGRES_MIGRATIONS } from '../artifacts/integrity-findings.js';

export const ALL_MIGRATIONS: readonly Migration[] = [
  ...STORE_MIGRATIONS,
  ...FINDING_MIGRATIONS,
  ...COUNTER_MIGRATIONS,
  ...DEPLOYMENT_MIGRATIONS,
  ...FLAG_MIGRATIONS,
  ...FRESHNESS_MIGRATIONS,
  ...REGISTRY_MIGRATIONS,
  ...USER_MIGRATIONS,
  ...WEBHOOK_MIGRATIONS,
].sort(
  (a, b) => a.version - b.version,
);

/**
 * PostgreSQL's list (same version ranges by owner): each module's tables as they are today, then any
 * later change in both lists.
 */
export const ALL_POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  ...STORE_POSTGRES_MIGRATIONS,
  ...FINDING_POSTGRES_MIGRATIONS,
  ...COUNTER_POSTGRES_MIGRATIONS,
  ...DEPLOYMENT_POSTGRES_MIGRATIONS,
  ...FLAG_POSTGRES_MIGRATIONS,
  ...FRESHNESS_POSTGRES_MIGRATIONS,
  ...REGISTRY_POSTGRES_MIGRATIONS,
  ...USER_POSTGRES_MIGRATIONS,
  ...WEBHOOK_POSTGRES_MIGRATIONS,
  ...TELEMETRY_POSTGRES_MIGRATIONS,
  ...LEADERSHIP_POSTGRES_MIGRATIONS,
].sort((a, b) => a.version - b.version);
