/**
 * Small measuring helpers for the benchmark: bounded-concurrency loops, memory after GC, medians.
 * I/O shell (reads process memory and the wall clock).
 */
import { setTimeout as delay } from 'node:timers/promises';

export { boundedEach } from '../concurrency.js';

/** RSS and heap after a full GC (run node with --expose-gc), settled for a moment. */
export async function settledMemory(): Promise<{ rss: number; heapUsed: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await delay(100);
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const fmt = (v: number, digits = 1): string => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
