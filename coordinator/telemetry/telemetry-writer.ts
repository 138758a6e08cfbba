/**
 * The broker thread's side of telemetry storage. The broker hook appends raw telemetry to a batch
 * (telemetry-batch.ts); every few tens of milliseconds, or as soon as a batch is full, the batch moves
 * to the telemetry thread (telemetry-worker.ts), which parses and aggregates it at once and commits it
 * to the store (telemetry.db, or PostgreSQL) within `flushIntervalMs`. So neither JSON parsing nor the
 * store ever runs on the thread that reads the devices' sockets. `ingest.telemetry` counts messages parsed; `telemetry.written`, those stored.
 *
 * Bounded: past `maxQueue` messages waiting or in flight, telemetry is dropped and counted
 * (`telemetry.dropped`). If the thread dies, the batches it held are counted as lost
 * (`telemetry.lost`) and a new thread starts. I/O shell (worker thread, timers).
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import type { Counters } from '../metrics.js';
import { StoreError } from '../store/db.js';
import { redactUrl } from '../store/postgres-sql.js';
import { isPostgresUrl } from '../store/open-store.js';
import { BatchBuilder, type VersionNote } from './telemetry-batch.js';
import type { BadMessages } from '../ingest/bad-messages.js';
import type { TelemetryStoreOptions } from './telemetry-store.js';
import type { FromTelemetryThread, ToTelemetryThread } from './telemetry-thread.js';
import type { TelemetryWorkerData } from './telemetry-worker.js';

export interface TelemetryWriterOptions {
  /** The telemetry database file, or the coordinator's PostgreSQL URL (already migrated). */
  location: string;
  store: TelemetryStoreOptions;
  /** Telemetry is committed at most this long (real time) after it arrived. */
  flushIntervalMs: number;
  /** A batch this large moves to the telemetry thread at once, and that many waiting are committed at once. */
  maxBatch: number;
  /** Messages waiting plus in flight; past it telemetry is dropped. */
  maxQueue: number;
  timers: Clock;
  logger: Logger;
  counters: Counters;
  /** Firmware versions (and slots) devices reported that differ from the last ones seen. */
  onVersions(notes: VersionNote[]): void;
  /** The account of bad device messages: telemetry that failed to parse (up to 20 described per batch). */
  bad: Pick<BadMessages, 'telemetry'>;
  /** The thread's entry module; default telemetry-worker.js beside this file. */
  workerUrl?: URL;
}

const RESTART_DELAY_MS = 1_000;
/** The store's location for an operator: a path, or the PostgreSQL URL without its password. */
const where = (location: string): string => (isPostgresUrl(location) ? redactUrl(location) : location);
/** How long raw telemetry waits on this thread before it moves: short, the move is cheap. */
const HANDOFF_MS = 25;
const YOUNG_GENERATION_MB = 96;
const STOP_TIMEOUT_MS = 10_000;

export class TelemetryWriter {
  private worker: Worker | undefined;
  private builder = new BatchBuilder();
  private nextId = 1;
  private nextPruneId = 1;
  private readonly inFlight = new Map<number, number>();
  private inFlightCount = 0;
  private waiters: { id: number; resolve: () => void }[] = [];
  private readonly prunes = new Map<number, { resolve: (rows: number) => void; reject: (err: Error) => void }>();
  private timer: TimerHandle | undefined;
  private restartTimer: TimerHandle | undefined;
  private stopping: Promise<void> | undefined;
  private onStopped: (() => void) | undefined;
  /** Messages parsed and committed since start. */
  written = 0;

  private constructor(private readonly options: TelemetryWriterOptions) {}

  /** Starts the telemetry thread; resolves once it has opened (and migrated) the database. */
  static async start(options: TelemetryWriterOptions): Promise<TelemetryWriter> {
    const w = new TelemetryWriter(options);
    await w.spawn();
    w.schedule();
    return w;
  }

  /** Messages waiting for the next batch plus those the telemetry thread has not committed yet. */
  get pending(): number {
    return this.builder.length + this.inFlightCount;
  }

  /** Queues one message's raw payload; false when it was dropped (queue full or stopping). */
  enqueue(deviceId: string, payload: Uint8Array, at: number): boolean {
    if (this.stopping) return false;
    if (this.pending >= this.options.maxQueue) {
      this.options.counters.inc('telemetry.dropped');
      return false;
    }
    this.builder.add(deviceId, payload, at);
    if (this.builder.length >= this.options.maxBatch) this.post();
    return true;
  }

  /** Sends what is waiting, commits it and resolves when everything queued so far is stored (or lost). */
  async flush(): Promise<number> {
    const before = this.written;
    this.post();
    const last = this.nextId - 1;
    if (this.inFlight.size > 0) {
      const done = new Promise<void>((resolve) => this.waiters.push({ id: last, resolve }));
      this.worker?.postMessage({ type: 'commit' } satisfies ToTelemetryThread);
      await done;
    }
    return this.written - before;
  }

  /** Deletes raw samples past retention (on the telemetry thread). Resolves with chunks deleted. */
  prune(now: number): Promise<number> {
    const worker = this.worker;
    if (!worker || this.stopping) return Promise.resolve(0);
    const id = this.nextPruneId++;
    return new Promise<number>((resolve, reject) => {
      this.prunes.set(id, { resolve, reject });
      worker.postMessage({ type: 'prune', id, now } satisfies ToTelemetryThread);
    });
  }

  /** Commits what is queued, then ends the thread. Safe to call twice. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    if (this.timer) this.options.timers.clearTimeout(this.timer);
    if (this.restartTimer) this.options.timers.clearTimeout(this.restartTimer);
    this.post();
    const worker = this.worker;
    if (!worker) {
      // Stopped while the thread was restarting: what waits here cannot be stored any more.
      this.lose(this.builder.length + this.inFlightCount);
      return;
    }
    // 'stopped' comes after the final commit's report on the same port, so everything stored is counted.
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const done = Promise.race([exited, new Promise<void>((resolve) => (this.onStopped = resolve))]);
    worker.postMessage({ type: 'stop' } satisfies ToTelemetryThread);
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timeout = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
    if ((await Promise.race([done, timedOut])) === 'timeout') {
      this.options.logger.error({ pending: this.pending }, 'telemetry thread did not stop in time; terminating it');
    }
    clearTimeout(timeout);
    // Everything is committed and reported by now; ending the thread cannot lose anything.
    await worker.terminate();
    this.lose(this.inFlightCount);
    this.worker = undefined;
  }

  private post(): void {
    const worker = this.worker;
    if (!worker || this.builder.length === 0) return;
    const id = this.nextId++;
    const batch = this.builder.take();
    this.inFlight.set(id, batch.count);
    this.inFlightCount += batch.count;
    worker.postMessage({ type: 'batch', id, batch } satisfies ToTelemetryThread, [batch.bytes.buffer, batch.ats.buffer, batch.ends.buffer]);
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = this.options.timers.setTimeout(() => {
      this.post();
      this.schedule();
    }, Math.min(HANDOFF_MS, this.options.flushIntervalMs));
  }

  private spawn(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const data: TelemetryWorkerData = {
        location: this.options.location,
        store: this.options.store,
        commitIntervalMs: this.options.flushIntervalMs,
        maxBatch: this.options.maxBatch,
      };
      const url = this.options.workerUrl ?? new URL('./telemetry-worker.js', import.meta.url);
      // Parsing makes short-lived garbage at the message rate: a larger young generation lets most of
      // it die before a scavenge (about a quarter less CPU per message under load, measured).
      const worker = new Worker(url, { workerData: data, name: 'fleet-telemetry', resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
      let ready = false;
      let gone = false;
      const died = (err: Error): void => {
        if (gone) return;
        gone = true;
        if (!ready) {
          reject(new StoreError(`cannot start telemetry storage (${where(this.options.location)}): ${err.message}; check the data directory's permissions and free space, or that PostgreSQL is reachable`, { cause: err }));
        } else if (!this.stopping) {
          this.crashed(worker, err);
        }
      };
      worker.on('message', (m: FromTelemetryThread) => {
        if (m.type === 'ready') {
          ready = true;
          resolve();
        } else {
          this.receive(m);
        }
      });
      worker.on('error', died);
      worker.on('exit', (code) => died(new Error(`telemetry thread exited with code ${code}`)));
      this.worker = worker;
    });
  }

  private receive(m: FromTelemetryThread): void {
    switch (m.type) {
      case 'parsed':
        this.options.counters.inc('ingest.telemetry', m.parsed);
        if (m.notes.length) this.options.onVersions(m.notes);
        if (m.badCount) this.options.bad.telemetry(m.bad, m.badCount);
        if (m.lost) {
          this.options.counters.inc('telemetry.lost', m.lost);
          this.options.logger.error({ lost: m.lost, err: m.lostReason }, 'telemetry could not be stored: its devices could not be read from the store');
        }
        break;
      case 'stored':
        this.written += m.written;
        this.options.counters.inc('telemetry.written', m.written);
        this.settle(m.upTo);
        break;
      case 'failed':
        this.options.counters.inc('telemetry.flush.errors');
        this.options.counters.inc('telemetry.lost', m.lost);
        this.options.logger.error({ lost: m.lost, err: m.message }, 'telemetry could not be stored');
        this.settle(m.upTo);
        break;
      case 'pruned':
        this.prunes.get(m.id)?.resolve(m.rows);
        this.prunes.delete(m.id);
        break;
      case 'prune-failed':
        this.prunes.get(m.id)?.reject(new StoreError(`pruning raw telemetry failed: ${m.message}`));
        this.prunes.delete(m.id);
        break;
      case 'stopped':
        this.onStopped?.();
        break;
      case 'ready':
        break;
    }
  }

  /** Batches up to `upTo` committed (or lost): no longer in flight; flushes waiting for them resolve. */
  private settle(upTo: number): void {
    for (const [id, n] of this.inFlight) {
      if (id > upTo) continue;
      this.inFlightCount -= n;
      this.inFlight.delete(id);
    }
    const ready = this.waiters.filter((w) => w.id <= upTo);
    this.waiters = this.waiters.filter((w) => w.id > upTo);
    for (const w of ready) w.resolve();
  }

  private lose(messages: number): void {
    if (messages > 0) this.options.counters.inc('telemetry.lost', messages);
    this.settle(this.nextId);
    for (const p of this.prunes.values()) p.reject(new StoreError('the telemetry thread stopped before pruning'));
    this.prunes.clear();
  }

  private crashed(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.options.counters.inc('telemetry.thread.crashes');
    this.options.logger.error({ err, lost: this.inFlightCount }, 'telemetry thread died; restarting it');
    this.lose(this.inFlightCount);
    this.restartTimer = this.options.timers.setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.spawn().catch((e: unknown) => {
        this.options.logger.error({ err: e }, 'telemetry thread restart failed; retrying');
        this.crashed(this.worker ?? worker, e as Error);
      });
    }, RESTART_DELAY_MS);
  }
}
