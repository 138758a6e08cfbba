// The real telemetry thread, except that a batch holding the device `crash-now` kills it (an uncaught
// error, as a bug or a native fault would) before it is committed: for the writer's lost-batch
// accounting and restart. The real thread's listener is attached first, as it is in production.
import { parentPort } from 'node:worker_threads';
import '../../coordinator/telemetry/telemetry-worker.js';
import type { ToTelemetryThread } from '../../coordinator/telemetry/telemetry-thread.js';
import { batchDeviceIds } from '../../coordinator/telemetry/telemetry-batch.js';

parentPort?.on('message', (m: ToTelemetryThread) => {
  if (m.type === 'batch' && batchDeviceIds(m.batch).includes('crash-now')) throw new Error('telemetry thread crashed on purpose');
});
