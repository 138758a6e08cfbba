/**
 * The coordinator's periodic upkeep: devices' last-seen times and counter totals (kept in memory,
 * stored every few seconds so a restart starts from them) and pruning of the status inbox and of raw telemetry past
 * retention. Real-time timers from the injected `timers`; `stop()` is safe twice. I/O shell.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import type { Counters } from './metrics.js';
import type { CounterTotals } from './counter-totals.js';
import type { Sql } from './store/sql.js';
import type { DeviceRegistry } from './registry/device-registry.js';
import type { StatusInbox } from './ingest/status-inbox.js';
import type { TelemetryWriter } from './telemetry/telemetry-writer.js';
import type { AnomalyLog } from './registry/anomaly-log.js';

/** How often devices' last-seen times are written to the store (real time). */
const SEEN_FLUSH_MS = 5_000;
const PRUNE_MS = 60_000;

export interface HousekeepingDeps {
  sql: Sql;
  registry: DeviceRegistry;
  inbox: StatusInbox;
  telemetry: TelemetryWriter;
  clock: Clock;
  timers: Clock;
  counters: Counters;
  counterTotals: CounterTotals;
  logger: Logger;
  /** Device anomalies, stored with the last-seen times. */
  anomalies?: Pick<AnomalyLog, 'flush' | 'flushRolledBack'>;
}

const SEEN_FLUSH_ERRORS = 'registry.flush.errors';

export class Housekeeping {
  private seenTimer: TimerHandle | undefined;
  private pruneTimer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly deps: HousekeepingDeps) {}

  start(): void {
    this.scheduleSeenFlush();
    this.schedulePrune();
  }

  /**
   * Writes devices' last-seen times (and anomalies) in one transaction, after the registry's pending
   * writes; a failure is logged and counted (what was due stays due for the next flush). Never rejects.
   */
  async flushSeen(): Promise<void> {
    const { sql, registry, anomalies } = this.deps;
    try {
      await registry.idle();
      await sql.transaction(async (tx) => {
        await registry.flushSeen(tx);
        await anomalies?.flush(tx);
      });
    } catch (err) {
      registry.flushRolledBack();
      anomalies?.flushRolledBack();
      this.deps.counters.inc(SEEN_FLUSH_ERRORS);
      this.deps.logger.error({ err }, 'storing last-seen times failed');
    }
  }

  /** Adds the counters' increments to their stored totals; a failure is logged and retried next time. Never rejects. */
  async flushCounters(): Promise<void> {
    try {
      await this.deps.counterTotals.flush();
    } catch (err) {
      this.deps.logger.error({ err }, 'storing counter totals failed');
    }
  }

  /** Stops the timers and stores the last-seen times once more (counters: the owner's last step). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.seenTimer) this.deps.timers.clearTimeout(this.seenTimer);
    if (this.pruneTimer) this.deps.timers.clearTimeout(this.pruneTimer);
    await this.flushSeen();
  }

  private scheduleSeenFlush(): void {
    if (this.stopped) return;
    this.seenTimer = this.deps.timers.setTimeout(() => {
      // The next round is scheduled once this one is stored: two never overlap on a slow store.
      void this.flushSeen()
        .then(() => this.flushCounters())
        .then(() => this.scheduleSeenFlush());
    }, SEEN_FLUSH_MS);
  }

  private schedulePrune(): void {
    if (this.stopped) return;
    this.pruneTimer = this.deps.timers.setTimeout(() => {
      const { clock, inbox, telemetry, logger } = this.deps;
      inbox.prune(clock.now()).catch((err: unknown) => logger.error({ err }, 'status inbox prune failed'));
      telemetry.prune(clock.now()).then(
        (n) => {
          if (n) logger.debug({ chunks: n }, 'pruned raw telemetry');
        },
        (err: unknown) => logger.error({ err }, 'telemetry prune failed'),
      );
      this.schedulePrune();
    }, PRUNE_MS);
  }
}
