/**
 * Benchmark section: connect N devices from one process to a broker in another, for bare mqtt.js
 * clients, mqtt.js clients doing a device's connect handshake, and the simulator's devices. Each
 * measurement gets a fresh broker process and a fresh client process. I/O shell.
 */
import { fileURLToPath } from 'node:url';
import { startChild } from './child.js';
import type { ConnectResult } from './bare-clients.js';

export type ConnectKind = 'bare' | 'handshake' | 'simulated';

export interface ConnectMeasurement extends ConnectResult {
  kind: ConnectKind;
  /** Broker process RSS growth per connection, bytes. */
  brokerBytesPerConnection: number;
  /** Broker process CPU from before the clients started until they reported, ms. */
  brokerCpuMs: number;
}

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

export async function measureConnect(kind: ConnectKind, n: number, width: number): Promise<ConnectMeasurement> {
  const { child: broker, ready } = await startChild(here('./bare-broker-child.js'));
  try {
    const b0 = await broker.request<{ rss: number; cpuUs: number }>({ cmd: 'stats' }, 'stats');
    const url = `mqtt://127.0.0.1:${String(ready['port'])}`;
    const { child } = await startChild(here('./connect-client-child.js'), [kind, url, String(n), String(width), `${kind}${n}`]);
    try {
      const result = await child.request<ConnectResult & { type: string }>({ cmd: 'noop' }, 'result', 300_000);
      const b1 = await broker.request<{ rss: number; cpuUs: number }>({ cmd: 'stats' }, 'stats');
      return {
        kind,
        n: result.n,
        ms: result.ms,
        bytesPerConnection: result.bytesPerConnection,
        heapPerConnection: result.heapPerConnection,
        cpuMs: result.cpuMs,
        brokerBytesPerConnection: (b1.rss - b0.rss) / n,
        brokerCpuMs: (b1.cpuUs - b0.cpuUs) / 1000,
      };
    } finally {
      await child.stop();
    }
  } finally {
    await broker.stop();
  }
}
