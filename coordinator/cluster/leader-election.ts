/**
 * Leader election between coordinator replicas on one PostgreSQL database. The leader holds a session
 * advisory lock on a dedicated connection (never the pool: a pooled connection is shared and would
 * carry the lock to whoever borrows it). On acquiring it the leader starts a new term: it increments
 * `leadership.epoch` and records its id, admin URL, backend pid and a heartbeat in the server's clock.
 *
 * How leadership ends (the takeover bound, docs/replication.md):
 * - the leader's process dies (kill -9, crash): the kernel closes its socket, PostgreSQL ends the
 *   session and releases the lock at once; a follower's next try (every `retryMs`) wins;
 * - its machine or network goes away: the server's TCP keepalive on that session (idle 5 s, then 3
 *   probes 2 s apart) and `tcp_user_timeout` end the session within ~11 s;
 * - it hangs (SIGSTOP, a blocked event loop) while its kernel keeps the TCP session up: its heartbeat
 *   stops; once it is `leaseMs` old in the server's clock a follower terminates that backend
 *   (pg_terminate_backend) and takes the lock;
 * - the leader itself steps down when its connection errors or closes, when a heartbeat finds the
 *   epoch moved on, or when no heartbeat succeeded for half the lease.
 * A leader that steps down too late is still harmless: every engine write is fenced by its epoch
 * ({@link leadershipGuard}). I/O shell (node-postgres); timers injected.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import type { SqlQueries } from '../store/sql.js';

/** The advisory lock every replica of one database contends for ("fldr"). */
export const LEADER_LOCK_KEY = 0x666c6472;

/** Milliseconds since the epoch in the server's clock: every replica compares heartbeats in one clock. */
const SERVER_NOW = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** An engine write by a leader whose term is over: refused, and the writer steps down. */
export class FencedError extends FleetError {
  constructor(
    readonly term: number,
    readonly current: number,
  ) {
    super('fenced', `this coordinator's leadership (term ${term}) is over: term ${current} leads now; its write was refused and it steps down`);
  }
}

export interface LeaderInfo {
  epoch: number;
  leaderId: string | null;
  adminUrl: string | null;
}

/** Who leads, from the store (for a follower's answers). Undefined before any leader. */
export async function currentLeader(q: SqlQueries): Promise<LeaderInfo | undefined> {
  const row = await q.get<{ epoch: number; leader_id: string | null; admin_url: string | null }>('SELECT epoch, leader_id, admin_url FROM leadership WHERE id = 1');
  if (!row || row.epoch === 0) return undefined;
  return { epoch: row.epoch, leaderId: row.leader_id, adminUrl: row.admin_url };
}

/**
 * The fence for one term: called by the deployment repository inside each save's transaction. It
 * share-locks the leadership row, so a new leader's epoch increment waits for a write already under
 * way and every later write sees the new epoch.
 */
export function leadershipGuard(term: number, onFenced: (err: FencedError) => void): (tx: SqlQueries) => Promise<void> {
  return async (tx) => {
    const row = await tx.get<{ epoch: number }>('SELECT epoch FROM leadership WHERE id = 1 FOR SHARE');
    const current = row?.epoch ?? 0;
    if (current !== term) {
      const err = new FencedError(term, current);
      onFenced(err);
      throw err;
    }
  };
}

export interface LeaderElectionOptions {
  /** The PostgreSQL URL (the store's). */
  url: string;
  /** This replica's id (logs, the leadership row). */
  replicaId: string;
  /** This replica's admin API, advertised while it leads. */
  adminUrl: () => string;
  /** Starts the leader's work for a term; a rejection gives the term up. */
  onElected: (term: number) => Promise<void>;
  /** Stops the leader's work at once (synchronously started; the replica keeps serving). */
  onDemoted: (term: number, reason: string) => void;
  logger: Logger;
  /** Real-time timers. */
  timers: Clock;
  /** A follower tries to acquire this often. Default 1000 ms. */
  retryMs?: number;
  /** A heartbeat older than this (server clock) lets a follower end the holder's session. Default 10 s. */
  leaseMs?: number;
  /** The leader's heartbeat period. Default leaseMs / 5. */
  renewMs?: number;
}

export type Role = 'follower' | 'leader';

export class LeaderElection {
  private client: pg.Client | undefined;
  private term: number | undefined;
  private timer: TimerHandle | undefined;
  private lastRenewed = 0;
  private stopped = false;
  private attempting = false;

  constructor(private readonly options: LeaderElectionOptions) {}

  get role(): Role {
    return this.term === undefined ? 'follower' : 'leader';
  }

  /** The term this replica leads, if it leads. */
  get currentTerm(): number | undefined {
    return this.term;
  }

  private get retryMs(): number {
    return this.options.retryMs ?? 1000;
  }

  private get leaseMs(): number {
    return this.options.leaseMs ?? 10_000;
  }

  /** Starts contending (the first try runs at once). */
  start(): void {
    this.schedule(0);
  }

  /** Gives up leadership (the lock goes with the session) and stops contending. Safe twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) this.options.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.term !== undefined) this.demote('the coordinator stops');
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }

  /** Steps down now (a fenced write, a failed start); contends again after `retryMs`. */
  stepDown(reason: string): void {
    if (this.term === undefined) return;
    this.demote(reason);
    this.dropConnection();
    this.schedule(this.retryMs);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) this.options.timers.clearTimeout(this.timer);
    this.timer = this.options.timers.setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.attempting) return;
    this.attempting = true;
    try {
      if (this.term === undefined) await this.tryAcquire();
      else await this.renew();
    } catch (err) {
      if (this.term !== undefined) this.demote(`heartbeat failed: ${errorMessage(err)}`);
      else this.options.logger.warn({ err: errorMessage(err) }, 'leader election: cannot reach PostgreSQL; retrying');
      this.dropConnection();
    } finally {
      this.attempting = false;
    }
    if (this.stopped) return;
    this.schedule(this.term === undefined ? this.retryMs : (this.options.renewMs ?? this.leaseMs / 5));
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: `fleet-leader-election ${this.options.replicaId}`,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      connectionTimeoutMillis: 10_000,
      statement_timeout: Math.max(1000, Math.floor(this.leaseMs / 2)),
    });
    const lost = (reason: string): void => {
      if (this.client !== client) return;
      this.client = undefined;
      if (this.term !== undefined) this.demote(reason);
      client.end().catch(() => undefined);
      this.schedule(this.retryMs);
    };
    client.on('error', (err) => lost(`lost the election connection: ${errorMessage(err)}`));
    client.on('end', () => lost('the election connection closed'));
    await client.connect();
    // The server's side of this session notices a vanished peer within ~11 s (not the OS default of
    // two hours) and then ends the session, which releases the lock.
    await client.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 11000');
    this.client = client;
    return client;
  }

  private dropConnection(): void {
    const client = this.client;
    this.client = undefined;
    if (client) client.end().catch(() => undefined);
  }

  private async tryAcquire(): Promise<void> {
    const client = await this.connection();
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK_KEY]);
    if (!got.rows[0]?.ok) {
      await this.endStaleHolder(client);
      return;
    }
    const row = await client.query<{ epoch: string }>(
      `UPDATE leadership SET epoch = epoch + 1, leader_id = $1, admin_url = $2, backend_pid = pg_backend_pid(), renewed_at = ${SERVER_NOW} WHERE id = 1 RETURNING epoch`,
      [this.options.replicaId, this.options.adminUrl()],
    );
    const term = Number(row.rows[0]?.epoch);
    if (!Number.isSafeInteger(term) || term <= 0) throw new FleetError('store', 'the leadership row is missing: the database was not migrated by this build');
    this.term = term;
    this.lastRenewed = this.options.timers.now();
    this.options.logger.info({ term, replicaId: this.options.replicaId }, 'elected leader: starting the rollout engine');
    try {
      await this.options.onElected(term);
    } catch (err) {
      this.options.logger.error({ err, term }, 'the rollout engine did not start: giving leadership up');
      this.demote(`start failed: ${errorMessage(err)}`);
      this.dropConnection();
    }
  }

  /** A holder whose heartbeat is older than the lease is hung: end its session so the lock is free. */
  private async endStaleHolder(client: pg.Client): Promise<void> {
    const r = await client.query<{ pid: number; age: string }>(
      `SELECT l.pid, ${SERVER_NOW} - s.renewed_at AS age FROM leadership s
         JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objid = $1 AND l.classid = 0 AND l.pid = s.backend_pid
        WHERE s.id = 1 AND s.renewed_at IS NOT NULL`,
      [LEADER_LOCK_KEY],
    );
    const holder = r.rows[0];
    if (!holder || Number(holder.age) <= this.leaseMs) return;
    this.options.logger.warn({ pid: holder.pid, heartbeatAgeMs: Number(holder.age), leaseMs: this.leaseMs }, 'the leader stopped renewing its lease: ending its session to take over');
    await client.query('SELECT pg_terminate_backend($1)', [holder.pid]);
  }

  private async renew(): Promise<void> {
    const term = this.term!;
    // Half the lease without a heartbeat: step down before a follower may take over.
    if (this.options.timers.now() - this.lastRenewed > this.leaseMs / 2) {
      this.demote(`no heartbeat for ${this.options.timers.now() - this.lastRenewed} ms`);
      this.dropConnection();
      return;
    }
    // The lock lives in the session that took it: a new connection would not hold it.
    const client = this.client;
    if (!client) {
      this.demote('the election connection is gone');
      return;
    }
    const r = await client.query(`UPDATE leadership SET renewed_at = ${SERVER_NOW} WHERE id = 1 AND epoch = $1`, [term]);
    if (r.rowCount === 0) {
      this.demote('the leadership epoch moved on');
      this.dropConnection();
      return;
    }
    this.lastRenewed = this.options.timers.now();
  }

  private demote(reason: string): void {
    const term = this.term;
    if (term === undefined) return;
    this.term = undefined;
    this.options.logger.warn({ term, reason }, 'no longer the leader: the rollout engine stops, this replica keeps serving');
    try {
      this.options.onDemoted(term, reason);
    } catch (err) {
      this.options.logger.error({ err }, 'stopping the leader work failed');
    }
  }
}
