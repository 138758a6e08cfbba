/**
 * Benchmark section: fan-out. A one-wave deployment to 100% is created on the real coordinator; the
 * time is from just before the create call until the manifest has reached the last of N device-like
 * subscribers (each on its own bucket topic, as agents subscribe). I/O shell.
 */
import { fileURLToPath } from 'node:url';
import { startChild } from './child.js';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

export interface FanoutResult {
  n: number;
  received: number;
  ms: number;
}

export async function fanoutBench(n: number): Promise<FanoutResult> {
  const { child: coord, ready } = await startChild(here('./coordinator-child.js'));
  try {
    const { child: subs } = await startChild(here('./fanout-child.js'));
    try {
      const ids = Array.from({ length: n }, (_, i) => `fan${n}-${String(i).padStart(5, '0')}`);
      const { secrets } = await coord.request<{ secrets: Record<string, string> }>({ cmd: 'provision', ids, model: 'bench' }, 'provisioned', 300_000);
      await subs.request({ cmd: 'connect', url: ready['mqttUrl'], n, prefix: `fan${n}`, model: 'bench', secrets }, 'connected', 300_000);
      await new Promise((r) => setTimeout(r, 1500)); // hellos processed, registry settled
      const { at } = await coord.request<{ at: number }>({ cmd: 'deploy', version: '2.0.0', models: ['bench'] }, 'deployed', 120_000);
      const r = await subs.request<{ count: number; lastAt: number }>({ cmd: 'wait', timeoutMs: 60_000 }, 'received', 120_000);
      return { n, received: r.count, ms: r.lastAt - at };
    } finally {
      await subs.stop();
    }
  } finally {
    await coord.stop();
  }
}
