/**
 * Replication in the coordinator's composition: built when the store is PostgreSQL (a store other
 * coordinators may share), with the admin route that says who leads. A single coordinator on
 * PostgreSQL is a fleet of one replica: it wins the first election at once. I/O shell (composition).
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { AdminApi } from '../admin/admin-api.js';
import type { Artifacts, Basics, Stores } from '../coordinator-parts.js';
import { isPostgresUrl } from '../store/open-store.js';
import { Replication } from './replication.js';

/** This replica's default name: the host and the data directory (unique per running coordinator). */
export function defaultReplicaId(dataDir: string): string {
  return `${hostname()}:${resolve(dataDir)}`;
}

/** The replication of a coordinator on PostgreSQL; undefined on SQLite (one coordinator, always leading). */
export function buildReplication(b: Basics, s: Stores, a: Pick<Artifacts, 'artifacts'>): Replication | undefined {
  const { config } = b;
  if (!isPostgresUrl(config.store)) return undefined;
  const logger = b.root.child({ module: 'cluster' });
  const reloadDevices = gathered((ids) => s.registry.reload(ids), (err, ids) => {
    s.counters.inc('cluster.device-reload.errors');
    logger.warn({ err, devices: ids.length }, 'reloading devices another replica changed failed');
  });
  const credentialsFailed = (err: unknown, ids: readonly string[]): void => {
    s.counters.inc('cluster.credentials-reload.errors');
    logger.warn({ err, devices: ids.length }, "reading devices' changed credentials failed");
  };
  const reloadCredentialsOf = gathered((ids) => s.credentials.reloadDevices(ids), credentialsFailed);
  const reloadCredentials = (deviceId: string | undefined): void => {
    if (deviceId === undefined) {
      s.credentials.reload().catch((err: unknown) => credentialsFailed(err, []));
      return;
    }
    // At once, not with the gathered read: from here on a secret verified before is checked again, and
    // a session that logged in with it here is closed.
    s.credentials.changedElsewhere(deviceId);
    reloadCredentialsOf(deviceId);
  };
  const reloadArtifacts = (): void => {
    a.artifacts.reload().catch((err: unknown) => logger.warn({ err }, 'reloading artifacts another replica uploaded failed'));
  };
  return new Replication({
    url: config.store,
    sql: s.sql,
    replicaId: config.cluster.replicaId ?? defaultReplicaId(config.dataDir),
    reloadDevice: reloadDevices,
    reloadCredentials,
    reloadArtifacts,
    logger,
    timers: b.timers,
    retryMs: config.cluster.retryMs,
    leaseMs: config.cluster.leaseMs,
  });
}

/**
 * Another replica's device changes arrive one notification per device — thousands a second in a
 * connect storm or a bulk provisioning. They are gathered and read back together, one read at a time:
 * a read per notification queued tens of thousands of statements for the pool and starved the writes
 * behind them.
 */
function gathered(read: (ids: string[]) => Promise<void>, failed: (err: unknown, ids: string[]) => void): (id: string) => void {
  let changed = new Set<string>();
  let reading = false;
  const readChanged = (): void => {
    if (reading || changed.size === 0) return;
    const ids = [...changed];
    changed = new Set();
    reading = true;
    read(ids)
      .catch((err: unknown) => failed(err, ids))
      .finally(() => {
        reading = false;
        readChanged();
      });
  };
  return (id) => {
    changed.add(id);
    if (changed.size === 1) setImmediate(readChanged);
  };
}

/** `GET /v1/cluster`: this replica's role and who leads (any replica answers from the store). */
export function registerClusterRoutes(api: AdminApi, deps: { replication: Replication | undefined; replicaId: string }): void {
  api.get('/v1/cluster', { schema: { summary: "this coordinator's role among its replicas, and the leader" } }, async () => {
    const r = deps.replication;
    if (!r) return { replicated: false, replicaId: deps.replicaId, role: 'leader' as const };
    const leader = await r.leader();
    return { replicated: true, replicaId: deps.replicaId, role: r.isLeader ? ('leader' as const) : ('follower' as const), term: r.term ?? null, leader: leader ?? null };
  });
}
