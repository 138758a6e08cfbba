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

