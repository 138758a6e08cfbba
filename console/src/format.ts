/** Times, durations and numbers as the pages show them. Times are the coordinator's clock. */
import { serverNow } from './store.js';

const pad = (n: number): string => String(n).padStart(2, '0');

export function clockTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(ms)}`;
}

/** 1h 05m, 3m 20s, 45s. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** "3m 20s ago", from the coordinator's estimated now. */
export function ago(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return 'never';
  const d = serverNow() - ms;
  return d < 1000 ? 'just now' : `${duration(d)} ago`;
}

export function num(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  if (Number.isInteger(n)) return n.toLocaleString('en');
  return n.toLocaleString('en', { maximumFractionDigits: digits });
}

const METRIC_LABELS: Record<string, string> = {
  cpuPct: 'CPU %',
  memUsedMb: 'Memory MB',
  temperatureC: 'Temperature °C',
  batteryPct: 'Battery %',
  powerW: 'Power W',
  bootTimeS: 'Boot time s',
  crashes: 'Crashes',
  errors: 'Errors',
  reboots: 'Reboots',
  agentRestarts: 'Agent restarts',
};

export function metricLabel(name: string): string {
  return METRIC_LABELS[name] ?? name;
}

/** Who did it: the engine records a person's action as `operator:alice`; the person is what matters. */
export function who(actor: string | undefined): string {
  return (actor ?? '').replace(/^(operator:)+/, '') || 'operator';
}
