/**
 * A coordinator in its own process, for tests that kill it with SIGKILL. Argument: the data dir.
 * `CHILD_HTTP_CONFIG` (JSON) overrides http options (download limits); `CHILD_STORE` is a PostgreSQL URL
 * to keep everything in (default: SQLite in the data dir). Prints one JSON line
 * {mqttUrl, httpUrl, token, trustDir} when it is up, then runs until killed.
 */
import { pino } from 'pino';
import { createCoordinator } from '../../coordinator/index.js';
import { hardGatesAnalyzer } from '../../coordinator/gate/hard-gates.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: coordinator-child.ts <data-dir>');
const httpOverrides = JSON.parse(process.env['CHILD_HTTP_CONFIG'] ?? '{}') as Record<string, unknown>;
const c = await createCoordinator({
  // Hard gates only: the test's soaks are far too short for the statistical judge's exposure needs.
  analyzers: [hardGatesAnalyzer],
  logger: pino({ level: process.env['CHILD_LOG_LEVEL'] ?? 'silent' }, pino.destination(2)),
  config: {
    env: 'development',
    dataDir,
    ...(process.env['CHILD_STORE'] ? { store: process.env['CHILD_STORE'] } : {}),
    // `auto`: a restart on the same data dir comes back on the same ports (agents and manifests know them).
    mqtt: { port: 'auto', host: '127.0.0.1' },
    http: { port: 'auto', host: '127.0.0.1', maxConcurrentDownloads: 64, ...httpOverrides },
    allowAnonymousDevices: false,
    credentialCost: 4,
    telemetry: { flushIntervalMs: 20, maxBatch: 2000, rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, silentAfterMs: 5 * 60_000 },
  },
});
process.stdout.write(JSON.stringify({ mqttUrl: c.mqttUrl, httpUrl: c.httpUrl, token: c.adminToken, trustDir: c.trustDir }) + '\n');
process.on('SIGTERM', () => {
  void c.stop().then(() => process.exit(0));
});
