/**
 * Custom metrics from a device-specific script. I/O adapter.
 *
 * The script prints either a JSON object `{"name": number}` or `name value` lines. Non-numeric values
 * and bad names are skipped (and counted as errors by the agent); a script that fails or times out
 * contributes nothing that interval.
 */
import { execFile } from 'node:child_process';
import type { TelemetryCollector, TelemetrySample } from './collector.js';

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_METRICS = 64;

/** Parses the script's output into at most 64 valid metrics. Pure. */
export function parseCustomMetrics(output: string): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (name: string, value: unknown) => {
    if (Object.keys(out).length >= MAX_METRICS || !NAME.test(name)) return;
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    if (Number.isFinite(n)) out[name] = n;
  };
  const trimmed = output.trim();
  if (trimmed.startsWith('{')) {
    try {
      const obj = JSON.parse(trimmed) as unknown;
      if (obj && typeof obj === 'object' && !Array.isArray(obj)) for (const [k, v] of Object.entries(obj)) add(k, v);
      return out;
    } catch {
      return out;
    }
  }
  for (const line of trimmed.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name !== undefined && value !== undefined) add(name, value);
  }
  return out;
}

export class ScriptMetricsCollector implements TelemetryCollector {
  constructor(
    private readonly script: string,
    private readonly timeoutMs: number,
  ) {}

  collect(): Promise<TelemetrySample> {
    return new Promise((resolve, reject) => {
      execFile(this.script, [], { timeout: this.timeoutMs, maxBuffer: 64 * 1024 }, (err, stdout) => {
        if (err) reject(new Error(`metrics script ${this.script} failed: ${err.message}`));
        else resolve({ metrics: {}, custom: parseCustomMetrics(stdout) });
      });
    });
  }
}
