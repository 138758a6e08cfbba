/** Shared helpers for coordinator tests: temp dirs, silent logger, bounded waiting. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { onTestFinished } from 'vitest';
import { Coordinator, type CoordinatorOptions } from '../../coordinator/index.js';
import { hardGatesAnalyzer } from '../../coordinator/gate/hard-gates.js';
import type { TelemetryMessage } from '../../protocol/messages.js';

export function tempDir(prefix = 'fleet-coord-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A `fleet.db` path in a fresh temporary directory, removed when the current test finishes. */
export function tempDbPath(): string {
  const t = tempDir();
  onTestFinished(t.cleanup);
  return join(t.dir, 'fleet.db');
}

export const silentLogger: Logger = pino({ level: 'silent' });

let seq = 0;
/** A unique id per call and per test process. */
export function uniqueId(prefix: string): string {
  seq++;
  return `${prefix}-${process.pid}-${seq}-${Math.floor(Math.random() * 1e6)}`;
}

/** Polls `check` until it returns a truthy value or the time runs out (bounded). */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}


/**
 * A development coordinator on 127.0.0.1 ephemeral ports in a fresh data dir (cheap scrypt). Gates run
 * the hard gates only: these tests soak for fractions of a second, far too little exposure for the
 * statistical judge (which then rightly says Monitor).
 */
export async function startCoordinator(
  dataDir: string,
  options: Omit<CoordinatorOptions, 'config'> & { config?: CoordinatorOptions['config'] } = {},
): Promise<Coordinator> {
  const { config, ...rest } = options;
  return Coordinator.create({
    logger: silentLogger,
    analyzers: [hardGatesAnalyzer],
    ...rest,
    config: {
      env: 'development',
      dataDir,
      mqtt: { port: 0, host: '127.0.0.1' },
      http: { port: 0, host: '127.0.0.1', maxConcurrentDownloads: 64 },
      allowAnonymousDevices: false,
      credentialCost: 4,
      telemetry: { flushIntervalMs: 20, maxBatch: 2000, rollupSlotMs: 60_000, rawRetentionMs: 48 * 3600_000, silentAfterMs: 5 * 60_000 },
      ...config,
    },
  });
}

/** Calls the admin API with the coordinator's token (or another). */
export async function api<T = unknown>(
  c: { httpUrl: string; adminToken: string },
  method: string,
  path: string,
  body?: unknown,
  token: string | null = c.adminToken,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${c.httpUrl}${path}`, {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/**
 * A valid v1 telemetry payload, the `seq`-th a device publishes (optional fields left to the schema's
 * defaults, as a minimal agent would). `over` replaces fields, e.g. counters or the firmware version.
 */
export function telemetryPayload(deviceId: string, seq: number, over: Partial<TelemetryMessage> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      kind: 'telemetry',
      deviceId,
      firmwareVersion: '1.0.0',
      slot: 'A',
      uptimeS: 10 * seq,
      bootCount: 1,
      metrics: { cpuPct: 10 + seq, memUsedMb: 100 },
      counters: { crashes: 0, agentRestarts: 0, errors: 0, reboots: 0 },
      seq,
      at: Date.now(),
      ...over,
    }),
  );
}
