/**
 * Benchmark child process: the real coordinator (embedded broker, SQLite, ingest) in a fresh data
 * directory, so that publishers and subscribers in other processes measure its ingest and its wave
 * fan-out. They connect as provisioned devices. The per-device message rates are
 * lifted: the ingest sweep offers each of its 1,000 devices up to 140 messages a second to measure
 * the ingest path, which the default rate limit (5/s per device) would otherwise shed.
 *
 * IPC: {type:'ready', mqttUrl}; {cmd:'stats'} → {type:'stats', received (telemetry parsed and
 * aggregated), written (messages stored), receivedAt / writtenAt (epoch ms of the last of each), cpuUs
 * (all threads), mainCpuUs (the broker's thread; Linux), rss}; {cmd:'provision', ids, model} →
 * {type:'provisioned', secrets: {id: secret}}; {cmd:'deploy', version, devices} uploads an image
 * and starts a one-wave 100% deployment → {type:'deployed', at (epoch ms just before the create)};
 * {cmd:'stop'}.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { createCoordinator } from '@fleet/coordinator';
import { imageBytes } from '../firmware-images.js';
import { cpuMicros, mainThreadCpuMicros, watchCount } from './count-watch.js';

const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-coord-'));
const c = await createCoordinator({
  config: { env: 'development', dataDir: dir, mqtt: { port: 0, host: '127.0.0.1' }, http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 64 }, credentialCost: 4,
    deviceLimits: { telemetry: { perSecond: 1e6, burst: 1e6 }, control: { perSecond: 1e6, burst: 1e6 } } },
  logger: pino({ level: 'error' }),
});
const received = watchCount(() => c.counter('ingest.telemetry'));
const written = watchCount(() => c.counter('telemetry.written'));
process.send?.({ type: 'ready', mqttUrl: c.mqttUrl });

process.on('message', (msg: { cmd: string; version?: string; models?: string[]; ids?: string[]; model?: string }) => {
  void (async () => {
    if (msg.cmd === 'provision') {
      const provisioned = await c.provisionDevices(msg.ids ?? [], { hardwareModel: msg.model ?? 'bench' });
      process.send?.({ type: 'provisioned', secrets: Object.fromEntries(provisioned.map((p) => [p.deviceId, p.secret])) });
    } else if (msg.cmd === 'stats') {
      process.send?.({
        type: 'stats',
        received: c.counter('ingest.telemetry'),
        written: c.counter('telemetry.written'),
        receivedAt: received.lastChangeAt(),
        writtenAt: written.lastChangeAt(),
        cpuUs: cpuMicros(),
        mainCpuUs: mainThreadCpuMicros(),
        rss: process.memoryUsage().rss,
      });
    } else if (msg.cmd === 'deploy') {
      const version = msg.version ?? '2.0.0';
      const models = msg.models ?? ['bench'];
      await c.uploadFirmware({ image: Readable.from([imageBytes(`bench/${version}`, 64)]), version, hardware: models });
      const at = Date.now();
      await c.createDeployment({
        firmwareVersion: version,
        target: { hardwareModels: models, versionRange: '*', tags: [] },
        waves: [{ percent: 100, soakMs: 0, deadlineMs: 3_600_000, minDevicesReporting: 0, requiresApproval: false }],
        maintenanceWindows: [],
        draft: false,
      }, 'bench');
      process.send?.({ type: 'deployed', at });
    } else if (msg.cmd === 'stop') {
      await c.stop();
      await rm(dir, { recursive: true, force: true });
      process.exit(0);
    }
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
