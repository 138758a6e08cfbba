/**
 * Entry of the telemetry thread (a worker_threads Worker started by telemetry-writer.ts): owns the
 * telemetry store's connection and a TelemetryThread. Batches are parsed as they arrive; the
 * transaction that stores them runs at most `commitIntervalMs` later, sooner once `maxBatch` messages
 * wait or a flush asks for it. One transaction then carries many messages per device, so the
 * per-device rows (rollup, samples, counters) are written once per commit, not once per message.
 *
 * The store is SQLite's telemetry.db, or the coordinator's PostgreSQL database through a pool of its
 * own (the coordinator migrated it before starting this thread). Either way the thread is kept:
 * parsing and aggregating are most of the cost per message, and they stay off the broker's thread.
 * Batches are received one after another, in order; a commit takes what was received before it and
 * is written while later batches are parsed. I/O shell.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Sql } from '../store/sql.js';
import { PostgresSql } from '../store/postgres-sql.js';
import { isPostgresUrl } from '../store/open-store.js';
import { openTelemetrySqlite } from './telemetry-schema.js';
import { TelemetryThread, type FromTelemetryThread, type ToTelemetryThread } from './telemetry-thread.js';
import type { TelemetryStoreOptions } from './telemetry-store.js';

export interface TelemetryWorkerData {
  /** telemetry.db's path, or the coordinator's PostgreSQL URL. */
  location: string;
  store: TelemetryStoreOptions;
  commitIntervalMs: number;
  maxBatch: number;
}

/** Connections of the thread's PostgreSQL pool: a commit's transaction, and reads for new devices beside it. */
const POSTGRES_CONNECTIONS = 2;

const port = parentPort;
if (!port) throw new Error('telemetry-worker.js runs as a worker thread, started by the coordinator');
const data = workerData as TelemetryWorkerData;
const sql: Sql = isPostgresUrl(data.location)
  ? await PostgresSql.open(data.location, { maxConnections: POSTGRES_CONNECTIONS, applicationName: 'fleet-telemetry' })
  : openTelemetrySqlite(data.location);
const thread = new TelemetryThread(sql, data.store);
const send = (m: FromTelemetryThread): void => port.postMessage(m);
let timer: NodeJS.Timeout | undefined;
let soon: NodeJS.Immediate | undefined;
/** Receives and commits, in arrival order. */
let steps: Promise<void> = Promise.resolve();
/** Commit reports, sent in commit order. */
let reports: Promise<void> = Promise.resolve();

/** Queues a step; an unexpected failure ends the thread (the writer counts its batches lost and starts another). */
function step(fn: () => Promise<void> | void): void {
  steps = steps.then(fn).catch((err: unknown) => {
    setImmediate(() => {
      throw err;
    });
  });
}

function commit(): void {
  clearTimeout(timer);
  if (soon) clearImmediate(soon);
  timer = undefined;
  soon = undefined;
  step(() => {
    const report = thread.commit();
    if (report) reports = reports.then(() => report).then(send);
  });
}

port.on('message', (m: ToTelemetryThread) => {
  switch (m.type) {
    case 'batch':
      step(async () => {
        send(await thread.receive(m.id, m.batch));
        if (thread.queued >= data.maxBatch) soon ??= setImmediate(commit);
        else timer ??= setTimeout(commit, data.commitIntervalMs);
      });
      break;
    case 'commit':
      commit();
      break;
    case 'prune':
      void thread.prune(m.id, m.now).then(send);
      break;
    case 'stop':
      commit();
      step(async () => {
        await reports;
        await sql.close();
        send({ type: 'stopped' });
        port.close();
      });
      break;
  }
});
send({ type: 'ready' });
