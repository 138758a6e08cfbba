/**
 * The readable summary of a simulation report (the JSON report is the record; this is for people).
 * Pure: returns text.
 */
import Table from 'cli-table3';
import { BOUND_TEXT, type ReleaseReport, type SimulationReport } from './report.js';
import type { ClockStats } from './paced-clock.js';
import { formatDuration } from '@fleet/firmware/duration';

/** A simulated duration, rounded for people: `4m 30s`, `1h 12m`. */
export function humanDuration(ms: number | null): string {
  if (ms === null) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
}

function behaviourText(r: ReleaseReport): string {
  const b = r.behaviour;
  switch (b.kind) {
    case 'healthy':
      return 'healthy';
    case 'battery-drain':
      return `battery drain +${b.percent}%`;
    case 'cpu-regression':
      return `CPU ×${b.factor}`;
    case 'memory-regression':
      return `memory +${b.extraMb} MB, leak ${b.leakMbPerH} MB/h`;
    case 'crash-rate':
      return `crash rate ×${b.factor}`;
    case 'boot-loop':
      return `boot loop (${Math.round(b.share * 100)}% of devices)`;
    case 'brick':
      return `bricks ${Math.round(b.share * 100)}% of devices`;
    case 'subtle':
      return `subtle ${b.metric} ${b.shift >= 0 ? '+' : ''}${Math.round(b.shift * 100)}%`;
    case 'noisy':
      return `noisy ×${b.factor}, same means`;
  }
}

/** The wave table of one release. */
export function waveTable(r: ReleaseReport): string {
  const table = new Table({
    head: ['wave', '%', 'targeted', 'installed', 'committed', 'fell back', 'rolled back', 'silent', 'gate'],
    style: { head: [], border: [] },
  });
  for (const w of r.waves) {
    const gate = w.decision ? `${w.decision.recommendation} (${w.decision.rule})` : w.status;
    table.push([w.index + 1, w.percent, w.targeted, w.installed, w.committed, w.fellBack, w.rolledBack, w.silent, gate]);
  }
  return table.toString();
}

export function formatRelease(r: ReleaseReport): string {
  const lines: string[] = [];
  const mark = r.ok ? 'OK ' : 'FAIL';
  lines.push(`${mark} ${r.previousVersion} → ${r.version}  [${behaviourText(r)}; expected ${r.expect === 'abort' ? 'an early abort' : 'a complete rollout'}]  outcome: ${r.outcome}`);
  lines.push(waveTable(r));
  for (const w of r.warnings) lines.push(`  coordinator warning at creation: ${w}`);
  for (const w of r.waves) {
    const why = Object.entries(w.failures).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    if (why) lines.push(`  wave ${w.index + 1} failures: ${why}`);
  }
  if (r.expect === 'abort' || r.outcome !== 'completed') {
    lines.push(`  exposure: ${r.exposure} device(s) ran ${r.version}${r.exposureBound !== null ? ` (bound: ${r.exposureBound} = ${BOUND_TEXT})` : ''}`);
    lines.push(`  time to detect: ${humanDuration(r.timeToDetectMs)}   time to full rollback: ${humanDuration(r.timeToFullRollbackMs)}`);
  }
  lines.push(`  reach: ${r.reach.onVersion}/${r.reach.online} online devices on ${r.version}   bricked by the firmware model: ${r.bricked.byFirmware}   by the system: ${r.bricked.bySystem}`);
  const abort = r.decisions.find((d) => d.recommendation === 'Abort');
  if (abort) {
    const how = abort.source === 'monitor-limit' ? 'the gate kept saying Monitor, so the rollout was aborted' : abort.source;
    lines.push(`  abort at wave ${abort.wave + 1} (${how}): ${abort.rule}`);
    for (const issue of abort.issues.slice(0, 4)) lines.push(`    - ${issue}`);
  }
  if (r.falseAbort) lines.push('  FALSE ABORT of a good release');
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}

/** How simulated time ran: the scale it reached, and how much the load slowed it. */
export function clockLine(c: ClockStats): string {
  const scale = (k: number): string => `×${k >= 10 ? Math.round(k) : k.toFixed(1)}`;
  if (!c.paced) return `clock: fixed ${scale(c.scale)}; event-loop lag p99 ${Math.round(c.lagMs.p99)} ms, max ${Math.round(c.lagMs.max)} ms`;
  const causes = Object.entries(c.slowedBy).sort((a, b) => b[1] - a[1]);
  const most = causes[0] && causes[0][1] > 0 ? `, mostly for ${causes[0][0] === 'work' ? 'real work in flight' : causes[0][0] === 'lag' ? 'event-loop lag' : 'a saturated event loop'}` : '';
  const slowed = c.slowedShare > 0.005 ? `, slowed ${Math.round(c.slowedShare * 100)}% of the time (lowest ${scale(c.lowestScale)}${most})` : '';
  const stalls = c.uncreditedMs >= 1000 ? `; ${(c.uncreditedMs / 1000).toFixed(1)} s of stalls not counted` : '';
  return `clock: paced, ${scale(c.effectiveScale)} effective of ${scale(c.scale)}${slowed}; event-loop lag p99 ${Math.round(c.lagMs.p99)} ms, max ${Math.round(c.lagMs.max)} ms${stalls}`;
}

/** The whole summary. */
export function formatReport(report: SimulationReport): string {
  const models = Object.entries(report.fleet.models).map(([m, n]) => `${n} ${m}`).join(', ');
  const faults = Object.entries(report.faults).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
  const head = [
    `scenario ${report.scenario}: ${report.description}`,
    `${report.devices} devices (${models}; ${report.fleet.offline} offline at start, ${report.fleet.slowLinks} on slow links), seed ${String(report.seed)}, time ×${report.timeScale}, broker ${report.broker}${report.deviceProcesses > 0 ? `, devices in ${report.deviceProcesses} processes` : ''}`,
    `simulated ${humanDuration(report.simulatedMs)} in ${formatDuration(Math.round(report.wallMs / 1000) * 1000)} wall time${faults ? `; faults injected: ${faults}` : ''}`,
    clockLine(report.clock),
  ];
  const body = report.releases.map(formatRelease);
  const tail = report.ok ? 'RESULT: every release handled as expected' : 'RESULT: FAILED — see the problems above';
  return [...head, '', ...body.flatMap((b) => [b, '']), tail].join('\n');
}
