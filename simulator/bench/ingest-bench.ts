/**
 * Benchmark section: telemetry ingest. 1,000 publishers in their own process offer valid telemetry at
 * rising rates to (a) a bare Aedes with an in-process subscriber that only counts, and (b) the
 * coordinator's embedded broker with its full ingest (parse, aggregate, store). Each receiver runs in
 * its own process. The sustainable rate is the highest offered rate handled as fast as it was offered
 * (≥ 97%, nothing lost) and, for the coordinator, stored within a second of the burst's end: a
 * receiver that parses fast but lets its storage fall behind is not keeping up. I/O shell.
 */
import { fileURLToPath } from 'node:url';
import { startChild } from './child.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface IngestPoint {
  offered: number;
  delivered: number;
  share: number;
  /** Receiver CPU (all its threads) per message handled, µs. */
  cpuUsPerMsg: number;
  /** Publisher CPU per message sent, µs (it shares the machine with the receiver). */
  publisherCpuUsPerMsg: number;
  /** Coordinator only: ms after the burst's end until every handled message was stored. */
  storeLagMs?: number;
  /**
   * Of cpuUsPerMsg, the receiver's main thread — the broker's — per message, µs (Linux). The rest is
   * its other threads: for the coordinator mostly the telemetry thread, for both a little GC.
   */
  brokerThreadUsPerMsg?: number;
}

/** A receiver's totals: messages handled, when the last was, its CPU; where storage is separate, stored. */
export interface ReceiverCounts {
  handled: number;
  handledAt: number;
  cpuUs: number;
  stored?: number;
  storedAt?: number;
  /** CPU of the main (broker) thread alone, µs (included in cpuUs); undefined where it cannot be read. */
  mainCpuUs?: number;
}

export interface IngestResult {
  points: IngestPoint[];
  sustainable: number;
  peak: number;
}

/** Storage must catch up within this after a burst for the rate to count as sustained. */
const MAX_STORE_LAG_MS = 1_000;

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the sweep against a receiver whose totals `counts()` returns. */
export async function sweep(
  url: string,
  counts: () => Promise<ReceiverCounts>,
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
    await sleep(1000);
    const points: IngestPoint[] = [];
    for (const rate of rates) {
      const c0 = await counts();
      const blasted = await pub.request<{ sent: number; ms: number; startedAt: number; endedAt: number; cpuUs: number }>({ cmd: 'blast', rate, seconds }, 'blasted', 120_000);
      // Let queues drain: wait until the count stops moving (bounded), then read when it last moved.
      let c1 = await counts();
      for (let i = 0; i < 40; i++) {
        await sleep(250);
        const c = await counts();
        const settled = c.handled === c1.handled && (c.stored ?? 0) === (c1.stored ?? 0) && (c.stored === undefined || c.stored >= c.handled);
        c1 = c;
        if (settled) break;
      }
      const got = c1.handled - c0.handled;
      // Delivery is counted over the burst plus its drain, up to the last message handled.
      const elapsed = Math.max(blasted.ms, c1.handledAt - blasted.startedAt);
      const offered = blasted.sent / (blasted.ms / 1000);
      const delivered = got / (elapsed / 1000);
      const point: IngestPoint = {
        offered,
        delivered,
        share: got / blasted.sent,
        cpuUsPerMsg: got ? (c1.cpuUs - c0.cpuUs) / got : 0,
        publisherCpuUsPerMsg: blasted.cpuUs / blasted.sent,
      };
      if (c1.mainCpuUs !== undefined && c0.mainCpuUs !== undefined && got) point.brokerThreadUsPerMsg = (c1.mainCpuUs - c0.mainCpuUs) / got;
      let lag = '';
      if (c1.stored !== undefined && c1.storedAt !== undefined) {
        point.storeLagMs = c1.stored >= c1.handled ? Math.max(0, c1.storedAt - blasted.endedAt) : Number.POSITIVE_INFINITY;
        lag = `, all stored ${point.storeLagMs} ms after the burst`;
      }
      points.push(point);
      const split = point.brokerThreadUsPerMsg !== undefined ? ` (broker thread ${point.brokerThreadUsPerMsg.toFixed(1)}, other threads ${(point.cpuUsPerMsg - point.brokerThreadUsPerMsg).toFixed(1)})` : '';
      log(`    offered ${Math.round(offered)} msg/s → handled ${Math.round(delivered)} msg/s (${((got / blasted.sent) * 100).toFixed(1)}%)${lag}; CPU ${point.cpuUsPerMsg.toFixed(1)} µs/msg${split} (publisher ${point.publisherCpuUsPerMsg.toFixed(1)})`);
      if (got / blasted.sent < 0.5) break;
    }
    // Sustainable: handled as fast as offered (within 3%), nothing lost, storage caught up; draining
    // a backlog after the burst does not count as keeping up.
    const ok = points.filter((p) => p.share >= 0.97 && p.delivered >= 0.97 * p.offered && (p.storeLagMs ?? 0) <= MAX_STORE_LAG_MS);
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
    const counts = async (): Promise<ReceiverCounts> => {
      const s = await child.request<{ received: number; receivedAt: number; cpuUs: number; mainCpuUs?: number }>({ cmd: 'stats' }, 'stats');
      return { handled: s.received, handledAt: s.receivedAt, cpuUs: s.cpuUs, ...definedProps({ mainCpuUs: s.mainCpuUs }) };
    };
    return await sweep(`mqtt://127.0.0.1:${String(ready['port'])}`, counts, rates, seconds, publishers, 'ingb', log);
  } finally {
    await child.stop();
  }
}


/**
 * The coordinator's full ingest (parse with zod, aggregate per device, batch into SQLite on its
 * telemetry thread), in its own process, its publishers provisioned devices. Handled: parsed and
 * aggregated; stored: committed.
 */
export async function coordinatorIngest(rates: readonly number[], seconds: number, publishers: number, log: (s: string) => void): Promise<IngestResult & { written: number }> {
  const { child, ready } = await startChild(here('./coordinator-child.js'));
  try {
    type Stats = { received: number; written: number; receivedAt: number; writtenAt: number; cpuUs: number; mainCpuUs?: number };
    const stats = (): Promise<Stats> => child.request<Stats>({ cmd: 'stats' }, 'stats');
    const counts = async (): Promise<ReceiverCounts> => {
      const s = await stats();
      return { handled: s.received, handledAt: s.receivedAt, cpuUs: s.cpuUs, stored: s.written, storedAt: s.writtenAt, ...definedProps({ mainCpuUs: s.mainCpuUs }) };
    };
    const ids = Array.from({ length: publishers }, (_, i) => `ingc-${String(i).padStart(5, '0')}`);
    const { secrets } = await child.request<{ secrets: Record<string, string> }>({ cmd: 'provision', ids, model: 'bench' }, 'provisioned', 300_000);
    const result = await sweep(String(ready['mqttUrl']), counts, rates, seconds, publishers, 'ingc', log, secrets);
    return { ...result, written: (await stats()).written };
  } finally {
    await child.stop();
  }
}
