/** Durations such as `30m`, `12h`, `7d`, `45s`, `500ms` (or plain milliseconds). Pure. */
import { ValidationError } from '@fleet/protocol/errors';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new ValidationError('duration', [`${JSON.stringify(text)} is not a duration like 30m, 12h or 7d`]);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
