/**
 * Benchmark section: telemetry ingest. 1,000 publishers in their own process offer valid telemetry at
 * rising rates to (a) a bare Aedes with an in-process subscriber that only counts, and (b) the
 * coordinator's embedded broker with its full ingest (parse, aggregate, store). Each receiver runs in
 * its own process. The sustainable rate is the highest offered rate delivered at ≥ 97%. I/O shell.
 */
import { fileURLToPath } from 'node:url';
import { startChild, type Child } from './child.js';

export interface IngestPoint {
  offered: number;
  delivered: number;
  share: number;
}

export interface IngestResult {
  points: IngestPoint[];
  sustainable: number;
  peak: number;
}

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

/** Runs the sweep against a receiver whose count of handled telemetry `count()` returns. */
export async function sweep(
  url: string,
  count: () => Promise<number>,
  rates: readonly number[],
  seconds: number,
  publishers: number,
  prefix: string,
  log: (s: string) => void,
  secrets?: Record<string, string>,
): Promise<IngestResult> {
  const { child: pub } = await startChild(here('./publisher-child.js'));
  try {
    await pub.request({ cmd: 'connect', url, n: publishers, prefix, secrets }, 'connected', 300_000);
    await new Promise((r) => setTimeout(r, 1000));
    const points: IngestPoint[] = [];
    for (const rate of rates) {
      const c0 = await count();
      const t0 = performance.now();
      const blasted = await pub.request<{ sent: number; ms: number }>({ cmd: 'blast', rate, seconds }, 'blasted', 120_000);
      // Let queues drain; delivery is counted over the blast plus the drain.
      let c1 = await count();
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 250));
        const c = await count();
        if (c === c1) break;
        c1 = c;
      }
      const elapsed = Math.max(blasted.ms, performance.now() - t0 - 250);
      const got = c1 - c0;
      const offered = blasted.sent / (blasted.ms / 1000);
      const delivered = got / (elapsed / 1000);
      points.push({ offered, delivered, share: got / blasted.sent });
      log(`    offered ${Math.round(offered)} msg/s → handled ${Math.round(delivered)} msg/s (${((got / blasted.sent) * 100).toFixed(1)}%)`);
      if (got / blasted.sent < 0.5) break;
    }
    const ok = points.filter((p) => p.share >= 0.97);
    return {
      points,
      sustainable: ok.length ? Math.max(...ok.map((p) => p.offered)) : 0,
      peak: Math.max(...points.map((p) => p.delivered)),
    };
  } finally {
    await pub.stop();
  }
}

/** The bare baseline: Aedes plus a counting in-process subscriber, in its own process. */
export async function bareIngest(rates: readonly number[], seconds: number, publishers: number, log: (s: string) => void): Promise<IngestResult> {
  const { child, ready } = await startChild(here('./bare-broker-child.js'), ['--count-telemetry']);
  try {
    return await sweep(`mqtt://127.0.0.1:${String(ready['port'])}`, () => received(child), rates, seconds, publishers, 'ingb', log);
  } finally {
    await child.stop();
  }
}

async function received(child: Child): Promise<number> {
  return (await child.request<{ received: number }>({ cmd: 'stats' }, 'stats')).received;
}
