/** Shared helpers for coordinator tests: temp dirs, silent logger, bounded waiting. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';

export function tempDir(prefix = 'fleet-coord-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
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
