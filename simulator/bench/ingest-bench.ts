/**
 * Benchmark section: telemetry ingest. 1,000 publishers in their own process offer valid telemetry at
 * rising rates to (a) a bare Aedes with an in-process subscriber that only counts, and (b) the
 * coordinator's embedded broker with its full ingest (parse, aggregate, store). Each receiver runs in
 * its own process. The sustainable rate is the highest offered rate handled as fast as it was offered
 * (≥ 97%, nothing lost). I/O shell.
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
    // Sustainable: handled as fast as offered (within 3%) and nothing lost; draining a backlog after
    // the burst does not count as keeping up.
    const ok = points.filter((p) => p.share >= 0.97 && p.delivered >= 0.97 * p.offered);
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

/** The coordinator's full ingest (parse with zod, aggregate per device, batch into SQLite), in its own process. */
export async function coordinatorIngest(rates: readonly number[], seconds: number, publishers: number, log: (s: string) => void): Promise<IngestResult & { written: number }> {
  const { child, ready } = await startChild(here('./coordinator-child.js'));
  try {
    const stats = (): Promise<{ received: number; written: number }> => child.request<{ received: number; written: number }>({ cmd: 'stats' }, 'stats');
    const result = await sweep(String(ready['mqttUrl']), async () => (await stats()).received, rates, seconds, publishers, 'ingc', log);
    return { ...result, written: (await stats()).written };
  } finally {
    await child.stop();
  }
}
