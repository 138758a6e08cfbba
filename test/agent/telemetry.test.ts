/** Telemetry collectors (a fake /proc and /sys tree, a followed log file, a metrics script) and the telemetry message. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFile, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LinuxCollector } from '../../agent/telemetry/linux-collector.js';
import { LogExcerptCollector, boundLines } from '../../agent/telemetry/log-excerpt.js';
import { ScriptMetricsCollector, parseCustomMetrics } from '../../agent/telemetry/custom-metrics.js';
import { combineCollectors } from '../../agent/telemetry/collector.js';
import { TelemetryMessageSchema } from '../../protocol/messages.js';
import { deviceTopic } from '../../protocol/topics.js';
import { startDevice, startFixture, uniqueId, waitFor, type Fixture } from './harness.js';
import type { SimulatedDevice } from '../../agent/simulated-device.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-telemetry-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(rel: string, content: string): Promise<void> {
  await mkdir(join(dir, rel, '..'), { recursive: true });
  await writeFile(join(dir, rel), content);
}

describe('LinuxCollector', () => {
  it('reads /proc and /sys, computing CPU % from the difference of two samples', async () => {
    await put('proc/stat', 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n');
    await put('proc/meminfo', 'MemTotal:        4096000 kB\nMemFree:  100 kB\nMemAvailable:    3072000 kB\n');
    await put('proc/uptime', '1234.56 999.00\n');
    await put('sys/class/thermal/thermal_zone0/temp', '48312\n');
    await put('sys/class/power_supply/BAT0/type', 'Battery\n');
    await put('sys/class/power_supply/BAT0/capacity', '87\n');
    await put('sys/class/power_supply/BAT0/power_now', '2500000\n');
    const c = new LinuxCollector(dir, () => 1200);
    const first = await c.collect();
    expect(first.metrics.bootTimeS).toBe(34.6);
    expect(first.metrics.cpuPct).toBeUndefined();
    expect(first.metrics).toMatchObject({ memTotalMb: 4000, memUsedMb: 1000, temperatureC: 48.3, batteryPct: 87, powerW: 2.5 });
    expect(first.uptimeS).toBe(1234.56);
    await put('proc/stat', 'cpu  150 0 150 900 0 0 0 0 0 0\n');
    const second = await c.collect();
    expect(second.metrics.cpuPct).toBe(50);
  });

  it('leaves out what the device does not have (never zero)', async () => {
    await put('proc/meminfo', 'MemTotal: 1024 kB\n');
    const s = await new LinuxCollector(dir, () => 5).collect();
    expect(s.metrics).toEqual({ memTotalMb: 1 });
    expect('batteryPct' in s.metrics).toBe(false);
    expect('temperatureC' in s.metrics).toBe(false);
  });
});

describe('log excerpt', () => {
  it('sends only new matching lines, bounded and truncated', async () => {
    const log = join(dir, 'app.log');
    await writeFile(log, 'ERROR old line before the agent started\n');
    const c = new LogExcerptCollector({ file: log, pattern: 'error|fatal', maxLines: 3, now: () => 0 });
    expect((await c.collect()).logs).toEqual([]);
    await appendFile(log, `info fine\nERROR one\nfatal two \u001b[31mred\u001b[0m\nerror ${'x'.repeat(2000)}\nerror four\nerror five\npartial error`);
    const logs = (await c.collect()).logs!;
    expect(logs).toHaveLength(3);
    expect(logs[0]).toBe('ERROR one');
    expect(logs[1]).toBe('fatal two [31mred[0m');
    expect(logs[2]).toBe('(+3 more matching lines)');
    // The partial last line is read once it is complete.
    await appendFile(log, ' now complete\n');
    expect((await c.collect()).logs).toEqual(['partial error now complete']);
  });

  it('bounds line length', () => {
    expect(boundLines(['y'.repeat(600)], 5)[0]).toHaveLength(512);
  });
});

describe('custom metrics', () => {
  it('parses JSON or name-value lines, skipping bad names and values', () => {
    expect(parseCustomMetrics('{"queue_depth": 4, "bad name": 1, "s": "7", "n": "x"}')).toEqual({ queue_depth: 4, s: 7 });
    expect(parseCustomMetrics('rssi -67\nlatency.ms 12.5\nnot-a-number abc\n')).toEqual({ rssi: -67, 'latency.ms': 12.5 });
  });

  it('runs the configured script; one failing collector drops only its part', async () => {
    const script = join(dir, 'metrics.sh');
    await writeFile(script, '#!/bin/sh\necho "rssi -61"\n');
    await chmod(script, 0o755);
    const errors: unknown[] = [];
    const combined = combineCollectors(
      [new ScriptMetricsCollector(script, 5_000), new ScriptMetricsCollector(join(dir, 'missing.sh'), 5_000), { collect: () => Promise.resolve({ metrics: { cpuPct: 5 } }) }],
      (err) => errors.push(err),
    );
    const s = await combined.collect();
    expect(s).toMatchObject({ metrics: { cpuPct: 5 }, custom: { rssi: -61 } });
    expect(errors).toHaveLength(1);
  });
});

describe('telemetry messages', () => {
  let f: Fixture;
  let dev: SimulatedDevice | undefined;
  beforeEach(async () => {
    f = await startFixture();
  });
  afterEach(async () => {
    await dev?.stop();
    await f.close();
  });

  it('publishes valid telemetry with metrics, cumulative counters and rising seq', async () => {
    const id = uniqueId('dev');
    let crashes = 1;
    const started = await startDevice(f, id, {}, {
      telemetry: {
        collect: () => Promise.resolve({ metrics: { cpuPct: 12.5, memUsedMb: 100, temperatureC: 999 }, events: { crashes: crashes--, errors: 0 }, logs: ['E boom'], custom: { fps: 30 } }),
      },
    });
    dev = started.dev;
    await dev.agent!.sendTelemetry();
    await dev.agent!.sendTelemetry();
    const topic = deviceTopic(id, 'telemetry');
    await waitFor(() => f.observer.messages.filter((m) => m.topic === topic).length === 2, 'two telemetry messages');
    const msgs = f.observer.of(id, 'telemetry').map((m) => TelemetryMessageSchema.parse(m));
    expect(msgs[0]!.metrics).toEqual({ cpuPct: 12.5, memUsedMb: 100 }); // out-of-range temperature dropped
    expect(msgs[0]).toMatchObject({ firmwareVersion: '1.0.0', slot: 'A', custom: { fps: 30 }, logs: ['E boom'] });
    expect(msgs[0]!.counters.crashes).toBe(1);
    expect(msgs[1]!.counters.crashes).toBe(1);
    expect(msgs[1]!.seq).toBeGreaterThan(msgs[0]!.seq);
    // After a restart the sequence keeps rising and the counters are not lost.
    await dev.powerCycle();
    await waitFor(() => dev!.agent?.connected === true, 'reconnected');
    await dev.agent!.sendTelemetry();
    await waitFor(() => f.observer.of(id, 'telemetry').length === 3, 'third telemetry message');
    const third = TelemetryMessageSchema.parse(f.observer.of(id, 'telemetry')[2]);
    expect(third.seq).toBeGreaterThan(msgs[1]!.seq);
    expect(third.counters).toMatchObject({ crashes: 1, reboots: 1 });
  });
});
