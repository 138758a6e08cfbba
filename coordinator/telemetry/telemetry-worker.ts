/**
 * Entry of the telemetry thread (a worker_threads Worker started by telemetry-writer.ts): owns the
 * telemetry database and a TelemetryThread. Batches are parsed as they arrive; the transaction that
 * stores them runs at most `commitIntervalMs` later, sooner once `maxBatch` messages wait or a flush
 * asks for it. One transaction then carries many messages per device, so the per-device rows
 * (rollup, samples, counters) are written once per commit, not once per message. I/O shell.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { closeDatabase } from '../store/db.js';
import { openTelemetryDatabase } from './telemetry-schema.js';
import { TelemetryThread, type FromTelemetryThread, type ToTelemetryThread } from './telemetry-thread.js';
import type { TelemetryStoreOptions } from './telemetry-store.js';

export interface TelemetryWorkerData {
  path: string;
  store: TelemetryStoreOptions;
  commitIntervalMs: number;
  maxBatch: number;
}

const port = parentPort;
if (!port) throw new Error('telemetry-worker.js runs as a worker thread, started by the coordinator');
const data = workerData as TelemetryWorkerData;
const db = openTelemetryDatabase(data.path);
const thread = new TelemetryThread(db, data.store);
const send = (m: FromTelemetryThread): void => port.postMessage(m);
let timer: NodeJS.Timeout | undefined;
let soon: NodeJS.Immediate | undefined;

function commit(): void {
  clearTimeout(timer);
  if (soon) clearImmediate(soon);
  timer = undefined;
  soon = undefined;
  const report = thread.commit();
  if (report) send(report);
}

port.on('message', (m: ToTelemetryThread) => {
  switch (m.type) {
    case 'batch':
      send(thread.receive(m.id, m.batch));
      if (thread.queued >= data.maxBatch) soon ??= setImmediate(commit);
      else timer ??= setTimeout(commit, data.commitIntervalMs);
      break;
    case 'commit':
      commit();
      break;
    case 'prune':
      send(thread.prune(m.id, m.now));
      break;
    case 'stop':
      commit();
      closeDatabase(db);
      send({ type: 'stopped' });
      port.close();
      break;
  }
});
send({ type: 'ready' });
