/**
 * What the telemetry thread does with what it is sent: parse batches (telemetry-batch.ts) and aggregate
 * them in the TelemetryStore (reporting at once what was parsed), commit on its cadence or on request,
 * prune. The worker entry (telemetry-worker.ts) only wires this to its message port and a timer, so
 * every behaviour here runs in tests without a thread. I/O shell (SQLite through TelemetryStore).
 */
import type { TelemetryMessage } from '@fleet/protocol/messages';
import type { Db } from '../store/db.js';
import { decodeBatch, type BadTelemetry, type TelemetryBatch, type VersionNote } from './telemetry-batch.js';
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

  constructor(db: Db, options: TelemetryStoreOptions) {
    this.store = new TelemetryStore(db, options);
  }

  private readonly add = (msg: TelemetryMessage, at: number): void => this.store.add(msg, at);

  /** Parsed messages waiting for the next commit. */
  get queued(): number {
    return this.store.pending;
  }

  /** Parses a batch and aggregates its messages; the next commit writes them. */
  receive(id: number, batch: TelemetryBatch): ParsedReport {
    const decoded = decodeBatch(batch, this.lastVersions, this.add);
    this.lastId = id;
    return {
      type: 'parsed',
      id,
      received: batch.count,
      parsed: decoded.parsed,
      badCount: decoded.bad.length,
      bad: decoded.bad.slice(0, MAX_BAD_REPORTED),
      notes: decoded.notes,
    };
  }

  /** Writes everything received since the last commit; undefined when nothing was received since. */
  commit(): CommitReport | undefined {
    if (this.lastId === this.committedId) return undefined;
    const upTo = this.lastId;
    this.committedId = upTo;
    const queued = this.store.pending;
    try {
      return { type: 'stored', upTo, written: this.store.flush() };
    } catch (err) {
      return { type: 'failed', upTo, lost: queued, message: errorMessage(err) };
    }
  }

  prune(id: number, now: number): FromTelemetryThread {
    try {
      return { type: 'pruned', id, rows: this.store.prune(now) };
    } catch (err) {
      return { type: 'prune-failed', id, message: errorMessage(err) };
    }
  }
}
