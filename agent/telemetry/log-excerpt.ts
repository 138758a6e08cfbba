/**
 * New error log lines for telemetry: from a file the agent follows, or a systemd unit's journal.
 * I/O adapter.
 *
 * Bounded on every axis: at most `maxLines` lines per sample (a `(+N more)` marker says how many were
 * dropped), each truncated to 512 characters, at most 256 KiB of a file read per sample. Lines are
 * untrusted device output; the coordinator treats them as text.
 */
import { execFile } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import type { TelemetryCollector, TelemetrySample } from './collector.js';

export const LOG_LINE_LIMIT = 512;
const READ_LIMIT = 256 * 1024;

export interface LogExcerptOptions {
  /** Follow this file (lines appended since the agent started)... */
  file?: string;
  /** ...or read this systemd unit's journal at priority err and above. */
  journalUnit?: string;
  /** Case-insensitive pattern a line must match (journal lines are already errors). */
  pattern: string;
  maxLines: number;
  /** Epoch ms; for journalctl --since. */
  now: () => number;
}

/** Keeps at most `max` lines, truncated, with a marker for the rest. */
export function boundLines(lines: readonly string[], max: number): string[] {
  if (max <= 0) return [];
  // Control characters (terminal escapes) are stripped: the lines end up on an operator's screen.
  const strip = (l: string) => [...l].filter((ch) => { const c = ch.charCodeAt(0); return c === 9 || (c >= 32 && c !== 127); }).join('');
  const clean = lines.map((l) => strip(l).slice(0, LOG_LINE_LIMIT));
  if (clean.length <= max) return clean;
  return [...clean.slice(0, max - 1), `(+${clean.length - max + 1} more matching lines)`];
}

export class LogExcerptCollector implements TelemetryCollector {
  private offset: number | null = null;
  private since: number;
  private readonly pattern: RegExp;

  constructor(private readonly options: LogExcerptOptions) {
    this.pattern = new RegExp(options.pattern, 'i');
    this.since = options.now();
  }

  async collect(): Promise<TelemetrySample> {
    const lines = this.options.file !== undefined ? await this.fromFile(this.options.file) : await this.fromJournal();
    const matching = this.options.file !== undefined ? lines.filter((l) => this.pattern.test(l)) : lines;
    return { metrics: {}, logs: boundLines(matching, this.options.maxLines) };
  }

  private async fromFile(path: string): Promise<string[]> {
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return [];
    }
    if (this.offset === null || size < this.offset) {
      // First look (only new lines count) or the file was rotated/truncated (start again at 0).
      const first = this.offset === null;
      this.offset = first ? size : 0;
      if (first) return [];
    }
    const start = Math.max(this.offset, size - READ_LIMIT);
    const length = size - start;
    if (length <= 0) return [];
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(length);
      await fh.read(buf, 0, length, start);
      const text = buf.toString('utf8');
      // Keep a partial last line for next time.
      const end = text.lastIndexOf('\n');
      if (end < 0) return [];
      this.offset = start + Buffer.byteLength(text.slice(0, end + 1));
      return text.slice(0, end).split('\n').filter((l) => l.trim() !== '');
    } finally {
      await fh.close();
    }
  }

  private fromJournal(): Promise<string[]> {
    const unit = this.options.journalUnit;
    if (unit === undefined) return Promise.resolve([]);
    const since = Math.floor(this.since / 1000);
    this.since = this.options.now();
    return new Promise((resolve) => {
      execFile(
        'journalctl',
        ['-u', unit, '-p', 'err', '--since', `@${since}`, '-o', 'cat', '--no-pager', '-n', String(Math.max(1, this.options.maxLines * 5))],
        { timeout: 10_000, maxBuffer: READ_LIMIT },
        (err, stdout) => resolve(err ? [] : stdout.split('\n').filter((l) => l.trim() !== '')),
      );
    });
  }
}
