/**
 * What the telemetry thread does with what it is sent: parse batches (telemetry-batch.ts) and aggregate
 * them in the TelemetryStore (reporting at once what was parsed), commit on its cadence or on request,
 * prune. The worker entry (telemetry-worker.ts) only wires this to its message port and a timer, so
 * every behaviour here runs in tests without a thread. I/O shell (Sql through TelemetryStore).
 */
import type { TelemetryMessage } from '@fleet/protocol/messages';
import type { Sql } from '../store/sql.js';
import { batchDeviceIds, decodeBatch, type BadTelemetry, type TelemetryBatch, type VersionNote } from './telemetry-batch.js';
import { TelemetryStore, type TelemetryStoreOptions } from './telemetry-store.js';
import { errorMessage } from '@fleet/protocol/errors';

/** At most this many bad messages are described per batch; the rest are only counted. */
const MAX_BAD_REPORTED = 20;

export type ToTelemetryThread =
  | { type: 'batch'; id: number; batch: TelemetryBatch }
  /** Commit everything received so far now (a flush). */
  | { type: 'commit' }
  | { type: 'prune'; id: number; now: number }
  | { type: 'stop' };

/** A batch parsed and aggregated, for the next commit to write. */
export interface ParsedReport {
  type: 'parsed';
  id: number;
  received: number;
  parsed: number;
  badCount: number;
  bad: BadTelemetry[];
  notes: VersionNote[];
  /** Messages dropped because what they need could not be read from the store (`lostReason` says why). */
  lost: number;
  lostReason?: string;
}

export type CommitReport =
  /** Every batch up to `upTo` is committed: `written` messages. */
  | { type: 'stored'; upTo: number; written: number }
  /** The transaction failed: the parsed messages of the batches up to `upTo` are lost. */
  | { type: 'failed'; upTo: number; lost: number; message: string };

export type FromTelemetryThread =
  | { type: 'ready' }
  | ParsedReport
  | CommitReport
  | { type: 'pruned'; id: number; rows: number }
  | { type: 'prune-failed'; id: number; message: string }
  | { type: 'stopped' };

export class TelemetryThread {
  private readonly store: TelemetryStore;
  private readonly lastVersions = new Map<string, VersionNote>();
  private lastId = 0;
  private committedId = 0;

  constructor(sql: Sql, options: TelemetryStoreOptions) {
    this.store = new TelemetryStore(sql, options);
  }

  private readonly add = (msg: TelemetryMessage, at: number): void => this.store.add(msg, at);
  private readonly drop = (): void => {};

  /** Parsed messages waiting for the next commit. */
  get queued(): number {
    return this.store.pending;
  }

  /**
   * Reads what the batch's devices need from the store (usually nothing), parses the batch and
   * aggregates its messages; the next commit writes them. Calls must not overlap: batches are added
   * in the order they were received. When the store cannot be read, the batch is parsed (its bad
   * messages and versions still count) and its messages are reported lost.
   */
  async receive(id: number, batch: TelemetryBatch): Promise<ParsedReport> {
    let lostReason: string | undefined;
    try {
      await this.store.prepare(batchDeviceIds(batch), batch.ats);
    } catch (err) {
      lostReason = errorMessage(err);
    }
    const decoded = decodeBatch(batch, this.lastVersions, lostReason === undefined ? this.add : this.drop);
    this.lastId = id;
    return {
      type: 'parsed',
      id,
      received: batch.count,
      parsed: decoded.parsed,
      badCount: decoded.bad.length,
      bad: decoded.bad.slice(0, MAX_BAD_REPORTED),
      notes: decoded.notes,
      lost: lostReason === undefined ? 0 : decoded.parsed,
      ...(lostReason !== undefined ? { lostReason } : {}),
    };
  }

  /**
   * Writes everything received since the last commit; undefined when nothing was received since. The
   * rows are taken at the call; reports resolve in call order (a failed write is a `failed` report).
   */
  commit(): Promise<CommitReport> | undefined {
    if (this.lastId === this.committedId) return undefined;
    const upTo = this.lastId;
    this.committedId = upTo;
    const queued = this.store.pending;
    return this.store.flush().then(
      (written): CommitReport => ({ type: 'stored', upTo, written }),
      (err: unknown): CommitReport => ({ type: 'failed', upTo, lost: queued, message: errorMessage(err) }),
    );
  }

  /** Resolves when every commit so far is written (or failed). */
  settled(): Promise<void> {
    return this.store.settled();
  }

  async prune(id: number, now: number): Promise<FromTelemetryThread> {
    try {
      return { type: 'pruned', id, rows: await this.store.prune(now) };
    } catch (err) {
      return { type: 'prune-failed', id, message: errorMessage(err) };
    }
  }
}

