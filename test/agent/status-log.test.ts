/**
 * What the agent logs about an update: every change of state, but a download's progress reports
 * (here one per tenth of the image, each still sent to the coordinator: the report interval is set
 * to 0) at most every 10 s — a 1 MiB image on a fast link logs one "downloading" line, not ten. A
 * real agent, Aedes and HTTP on 127.0.0.1.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { publishRollout, serveImage, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

describe('agent status log', () => {
  it('logs one line per state, not one per download progress report', async () => {
    const lines: { msg?: string; state?: string; module?: string }[] = [];
    const raw: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
          raw.push(line);
          lines.push(JSON.parse(line) as { msg?: string; state?: string });
        }
        done();
      },
    });
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id, { download: { progressInterval: 0 } }, { logger: pino({ level: 'info' }, sink) });
    f.devices.push(dev);
    const artifact = serveImage(f, `${id}.img`, 'progress', 1024 * 1024);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => f.observer.statuses(id).some((s) => s.state === 'committed'), 'committed', 20_000);

    const reported = f.observer.statuses(id).filter((s) => s.state === 'downloading');
    expect(reported.length).toBeGreaterThan(3);
    const logged = lines.filter((l) => l.msg === 'update status' && l.state === 'downloading');
    expect(logged).toHaveLength(1);
    expect(lines.some((l) => l.msg === 'update status' && l.state === 'committed')).toBe(true);
    // Each line names its module once (a child of a child logger repeated the key).
    for (const line of raw) expect(line.match(/"module":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
  });
});
