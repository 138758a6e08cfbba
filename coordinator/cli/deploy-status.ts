/**
 * How `fleet deploy status` shows a deployment: a table of waves (numbered from 1) that fits a
 * 100-column terminal (up to hundreds of devices per wave), the rollback's progress and the latest
 * gate decisions; and `--watch`, which on a terminal redraws progress bars and prints each gate
 * decision as it is made, and elsewhere (a pipe, a CI log) prints only what changed. Rendering is
 * pure; `watch` polls the admin API.
 */
import { ago, bar, fit, remaining, table } from './format.js';
import type { AdminClient } from './admin-client.js';
import type { DeploymentView as ProtocolDeploymentView } from '@fleet/protocol/deployment-view';

/**
 * What the admin API returns for a deployment: the protocol's view, with the gate's decisions when
 * asked for (only the parts shown here are described).
 */
export type DeploymentView = ProtocolDeploymentView & { decisions?: Decision[] };

type Decision = { id: string; wave: number; at: number; final: { recommendation: string; rule?: string; issues?: string[] } };
type Wave = DeploymentView['waves'][number];

/** Width status lines are cut to: the terminal's, kept between 80 and 120 columns; 100 when piped. */
export function outputWidth(columns: number | undefined = process.stdout.columns): number {
  return columns === undefined ? 100 : Math.max(80, Math.min(120, columns));
}

const SETTLED = new Set(['completed', 'aborted', 'rolled-back']);

/** True once nothing will change any more (a completed deployment may still be rolling back). */
export function settled(d: DeploymentView): boolean {
  return SETTLED.has(d.phase) && !(d.phase === 'completed' && d.rollback && !d.rollback.completedAt);
}

export function finished(c: Record<string, number>): number {
  return (c['committed'] ?? 0) + (c['failed'] ?? 0) + (c['timedOut'] ?? 0) + (c['ineligible'] ?? 0);
}

export function expected(c: Record<string, number>): number {
  return Math.max(0, (c['tracked'] ?? 0) - (c['offline'] ?? 0));
}

function waveStatus(w: Wave, now: number): string {
  let s = w.status;
  if (w.status === 'soaking' && w.soakEndsAt !== undefined) s += ` (${remaining(w.soakEndsAt - now)} left)`;
  if (w.requiresApproval && w.status === 'pending') s += w.approvedBy !== undefined ? ` [approved by ${personOf(w.approvedBy)}]` : ' [approval]';
  return s;
}

/** Failed devices, with how many of them were silent past the deadline. */
function failedCell(c: Record<string, number>): string {
  const timedOut = c['timedOut'] ?? 0;
  const failed = (c['failed'] ?? 0) + timedOut;
  return timedOut > 0 ? `${failed} (${timedOut} silent)` : String(failed);
}

/** One gate decision: wave, age, verdict and rule; then its first issue, each line cut to `width`. */
export function decisionLines(dec: Decision, now: number, width: number): string[] {
  const issues = dec.final.issues ?? [];
  const head = fit(`wave ${dec.wave + 1} gate (${ago(dec.at, now)}): ${dec.final.recommendation}${dec.final.rule ? ` by ${dec.final.rule}` : ''}`, width);
  if (!issues.length) return [head];
  return [head, fit(`  - ${issues[0]}${issues.length > 1 ? ` (+${issues.length - 1} more: fleet deploy decisions)` : ''}`, width)];
}

/** `operator:alice` → `alice`: the engine's actor for a person's action. */
function personOf(actor: string): string {
  return actor.replace(/^operator:/, '');
}

export function phaseLine(d: DeploymentView): string {
  const by = d.pause?.by !== undefined ? ` by ${personOf(d.pause.by)}` : '';
  let phase = `phase ${d.phase}${d.paused ? ` (PAUSED${by}${d.pause?.reason ? `: ${d.pause.reason}` : ''})` : ''}`;
  if (d.waitingFor.length) phase += `, waiting for ${d.waitingFor.join(' and ')}`;
  return phase;
}

function rollbackLine(r: NonNullable<DeploymentView['rollback']>): string {
  const refused = r.refused ?? 0;
  const floor = refused > 0 ? `, ${refused} refused (committed above their security floor; they stay)` : '';
  return `rollback: ${r.confirmed}/${r.exposed} back on the old version, ${r.unreachable} unreachable${floor} ${bar(r.confirmed + r.unreachable + refused, r.exposed, 10)}`;
}

export function renderStatus(d: DeploymentView, now = Date.now(), width = outputWidth()): string {
  const lines: string[] = [];
  const tags = d.target.tags.length ? `, tags ${d.target.tags.join(',')}` : '';
  lines.push(fit(`deployment ${d.id}: firmware ${d.firmwareVersion} → ${d.target.hardwareModels.join(',')} (${d.target.versionRange}${tags})`, width));
  lines.push(fit(phaseLine(d), width));
  if (d.abortReason) lines.push(fit(`aborted${d.abortedBy !== undefined ? ` by ${personOf(d.abortedBy)}` : ''}: ${d.abortReason}`, width));
  lines.push(
    table(
      ['wave', 'status', 'progress', 'ok', 'failed', 'busy', 'wait', 'verdict'],
      d.waves.map((w) => [
        `${w.index + 1} (${w.percent}%)`,
        waveStatus(w, now),
        bar(finished(w.counts), expected(w.counts), 8),
        w.counts['committed'] ?? 0,
        failedCell(w.counts),
        w.counts['inProgress'] ?? 0,
        w.counts['waiting'] ?? 0,
        w.verdict ?? '-',
      ]),
    ),
  );
  const approvals = d.waves.filter((w) => w.approvedBy !== undefined).map((w) => `wave ${w.index + 1} by ${personOf(w.approvedBy!)}`);
  if (approvals.length) lines.push(fit(`approved: ${approvals.join(', ')}`, width));
  if (d.rollback) lines.push(rollbackLine(d.rollback));
  for (const dec of d.decisions?.slice(-5) ?? []) lines.push(...decisionLines(dec, now, width));
  return lines.join('\n');
}

/** A one-line summary of a wave, for the change log of a piped `--watch`. */
export function waveLine(w: Wave, now: number): string {
  const c = w.counts;
  return `wave ${w.index + 1} (${w.percent}%): ${waveStatus(w, now).replace(/ \([^)]* left\)/, '')}, ${finished(c)}/${expected(c)} finished, ok ${c['committed'] ?? 0}, failed ${failedCell(c)}${w.verdict ? `, ${w.verdict}` : ''}`;
}

/**
 * The lines a piped `--watch` prints for one poll: the phase, each wave and the rollback when they
 * changed since the last poll (`seen` remembers them), and each gate decision once.
 */
export function changedLines(d: DeploymentView, seen: Map<string, string>, now: number, width: number): string[] {
  const out: string[] = [];
  const note = (key: string, line: string): void => {
    if (seen.get(key) === line) return;
    seen.set(key, line);
    out.push(line);
  };
  note('phase', phaseLine(d));
  for (const w of d.waves) if (w.startedAt !== undefined || w.status !== 'pending') note(`wave ${w.index}`, waveLine(w, now));
  if (d.rollback) note('rollback', rollbackLine(d.rollback));
  for (const dec of d.decisions ?? []) if (!seen.has(`decision ${dec.id}`)) note(`decision ${dec.id}`, decisionLines(dec, now, width).join('\n'));
  return out;
}

/** Polls the deployment until it settles: progress bars on a terminal, changed lines elsewhere. */
export async function watch(api: AdminClient, id: string, intervalMs: number, tty = Boolean(process.stdout.isTTY)): Promise<void> {
  const path = `/v1/deployments/${encodeURIComponent(id)}`;
  const width = outputWidth();
  if (!tty) {
    const seen = new Map<string, string>();
    let first = true;
    for (;;) {
      const d = await api.get<DeploymentView>(path);
      const now = Date.now();
      if (first) console.log(`deployment ${d.id}: firmware ${d.firmwareVersion} → ${d.target.hardwareModels.join(',')}`);
      first = false;
      for (const line of changedLines(d, seen, now, width)) console.log(`${new Date(now).toISOString().slice(11, 19)} ${line}`);
      if (settled(d)) return;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
  const { MultiBar, Presets } = await import('cli-progress');
  let multi: InstanceType<typeof MultiBar> | undefined;
  let bars: ReturnType<InstanceType<typeof MultiBar>['create']>[] = [];
  const printed = new Set<string>();
  for (;;) {
    const d = await api.get<DeploymentView>(path);
    const now = Date.now();
    if (!multi) {
      console.log(`deployment ${d.id}: firmware ${d.firmwareVersion} → ${d.target.hardwareModels.join(',')}`);
      multi = new MultiBar({ format: ' wave {wave} {bar} {value}/{total} | {status} | ok {ok} failed {failed}', barsize: 20, hideCursor: true, clearOnComplete: false }, Presets.shades_classic);
      bars = d.waves.map((w) => multi!.create(Math.max(1, expected(w.counts)), 0));
    }
    // Gate decisions and phase changes scroll above the bars as they happen.
    const news: [string, () => string][] = [[`phase ${phaseLine(d)}`, () => phaseLine(d)], ...(d.decisions ?? []).map((dec): [string, () => string] => [`decision ${dec.id}`, () => decisionLines(dec, now, width).join('\n')])];
    for (const [key, line] of news) {
      if (printed.has(key)) continue;
      printed.add(key);
      multi.log(`${line()}\n`);
    }
    d.waves.forEach((w, i) => {
      const b = bars[i];
      if (!b) return;
      b.setTotal(Math.max(1, expected(w.counts)));
      b.update(finished(w.counts), {
        wave: `${w.index + 1} (${w.percent}%)`,
        status: waveStatus(w, now) + (w.verdict ? ` → ${w.verdict}` : ''),
        ok: w.counts['committed'] ?? 0,
        failed: failedCell(w.counts),
      });
    });
    if (settled(d)) {
      multi.stop();
      console.log(renderStatus(d, now, width));
      return;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
