/**
 * One coordinator replica's part in a replicated fleet (docs/replication.md): it contends for
 * leadership; while it leads it runs the leader's work (the rollout engine, housekeeping that must run
 * once) and feeds the shared status inbox to the engine; it listens for the other replicas' device
 * changes and reloads those devices. Every replica, leader or not, serves the admin API and ingests
 * device messages. I/O shell (composition of the election, the listener and the inbox follower).
 */
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import type { StatusMessage } from '@fleet/protocol/messages';
import { HttpError } from '../admin/http-errors.js';
import type { Sql, SqlQueries } from '../store/sql.js';
import { ARTIFACT_CHANNEL, CREDENTIALS_CHANNEL, DEVICE_CHANNEL, INBOX_CHANNEL } from './leadership-migrations.js';
import { currentLeader, LeaderElection, leadershipGuard, type LeaderInfo } from './leader-election.js';
import { InboxFollower } from './inbox-follower.js';
import { PgListener } from './pg-listener.js';

/** A call only the leader may serve reached a follower: 503, naming the leader to retry at. */
export class NotLeaderError extends HttpError {
  constructor(readonly leader: LeaderInfo | undefined) {
    super(
      503,
      'not-leader',
      leader?.adminUrl
        ? `this coordinator replica is a follower: send deployment changes to the leader at ${leader.adminUrl} (term ${leader.epoch})`
        : 'no coordinator replica leads right now (an election is under way): retry in a few seconds',
      { headers: { 'retry-after': '2', ...(leader?.adminUrl ? { 'x-fleet-leader': leader.adminUrl } : {}) } },
    );
  }
}

/** What a replica does only while it leads. */
export interface LeaderWork {
  /** Resumes deployments and starts the engine's timers (after a demotion: a fresh engine). */
  start(term: number): Promise<void>;
  /** Stops the engine; the replica keeps serving reads. */
  stop(): Promise<void>;
}

export interface ReplicationOptions {
  /** The store's PostgreSQL URL (the election and the listener open their own connections). */
  url: string;
  sql: Sql;
  replicaId: string;
  /** Another replica changed this device's registry row: reload it. */
  reloadDevice: (deviceId: string) => void;
  /**
   * A device's credentials changed (through any replica): forget the secrets verified for it and read
   * them again; undefined: every device's (notifications may have been lost).
   */
  reloadCredentials: (deviceId: string | undefined) => void;
  /** Another replica uploaded (or removed) an artifact: read the records again. */
  reloadArtifacts: () => void;
  logger: Logger;
  timers: Clock;
  retryMs?: number;
  leaseMs?: number;
  inboxPollMs?: number;
}

/** What the replica runs while it leads, given once the parts that do it exist. */
export interface LeaderRole {
  work: LeaderWork;
  /** Feeds a status from the shared inbox to the engine. */
  feedStatus: (status: StatusMessage) => void;
  /** This replica's admin API, advertised while it leads. */
  adminUrl: () => string;
}

export class Replication {
  private election: LeaderElection | undefined;
  private listener: PgListener | undefined;
  private inbox: InboxFollower | undefined;
  private role: LeaderRole | undefined;
  /** The previous term's work, still stopping. */
  private stopping: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: ReplicationOptions) {}

  get isLeader(): boolean {
    return this.election?.role === 'leader';
  }

  get term(): number | undefined {
    return this.election?.currentTerm;
  }

  /** Listens, then contends for leadership (the first try runs at once). */
  async start(role: LeaderRole): Promise<void> {
    if (this.stopped || this.election) return;
    const o = this.o;
    const logger = o.logger;
    this.role = role;
    const inbox = new InboxFollower({ sql: o.sql, feed: role.feedStatus, logger, timers: o.timers, ...(o.inboxPollMs ? { pollMs: o.inboxPollMs } : {}) });
    this.inbox = inbox;
    this.listener = new PgListener({
      url: o.url,
      channels: [INBOX_CHANNEL, DEVICE_CHANNEL, CREDENTIALS_CHANNEL, ARTIFACT_CHANNEL],
      applicationName: `fleet-listener ${o.replicaId}`,
      logger,
      timers: o.timers,
      onNotification: (channel, payload) => {
        if (channel === INBOX_CHANNEL) inbox.wake();
        else if (channel === ARTIFACT_CHANNEL) o.reloadArtifacts();
        else if (channel === CREDENTIALS_CHANNEL) o.reloadCredentials(payload || undefined);
        else if (payload) o.reloadDevice(payload);
      },
      // Notifications sent while it was away are lost: read the inbox, the artifacts and every
      // device's credentials again (a secret revoked meanwhile must not stay remembered).
      onConnected: () => {
        inbox.wake();
        o.reloadArtifacts();
        o.reloadCredentials(undefined);
      },
    });
    this.election = new LeaderElection({
      url: o.url,
      replicaId: o.replicaId,
      adminUrl: role.adminUrl,
      logger,
      timers: o.timers,
      onElected: (term) => this.lead(term),
      onDemoted: () => this.follow(),
      ...(o.retryMs ? { retryMs: o.retryMs } : {}),
      ...(o.leaseMs ? { leaseMs: o.leaseMs } : {}),
    });
    await this.listener.start();
    this.election.start();
  }

  /** Refuses (NotLeaderError: 503 naming the leader) a change only the leader's engine may make. */
  async requireLeader(): Promise<void> {
    if (this.isLeader) return;
    throw new NotLeaderError(await currentLeader(this.o.sql));
  }

  /** Who leads, from the store. */
  leader(): Promise<LeaderInfo | undefined> {
    return currentLeader(this.o.sql);
  }

  /**
   * The fence for the engine's writes (the deployment repository calls it inside each save's
   * transaction): refused once another replica's term began, and this replica steps down.
   */
  readonly guard = async (tx: SqlQueries): Promise<void> => {
    const term = this.election?.currentTerm ?? -1;
    await leadershipGuard(term, (err) => this.election?.stepDown(err.message))(tx);
  };

  /** Gives leadership up (the engine stops) and stops listening. Safe twice. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.election?.stop();
    await this.listener?.stop();
    await this.inbox?.stop();
    await this.stopping;
  }

  /** Resolves when the inbox follower has fed what it read (tests). */
  async inboxIdle(): Promise<void> {
    await this.inbox?.idle();
  }

  private async lead(term: number): Promise<void> {
    await this.stopping;
    await this.role!.work.start(term);
    // From the start of the inbox: the start-up replay of statuses acknowledged before this term.
    await this.inbox!.start();
  }

  private follow(): void {
    const previous = this.stopping;
    this.stopping = previous
      .then(() => this.inbox?.stop())
      .then(() => this.role?.work.stop())
      .catch((err: unknown) => this.o.logger.error({ err }, 'stopping the rollout engine failed'));
  }
}
