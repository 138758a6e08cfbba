/**
 * The canary judge's calibration study (a benchmark, not a test): how often it rolls back a healthy
 * release, and how often it catches a crash regression, on seeded mixed fleets whose telemetry goes
 * through the coordinator's real telemetry store and snapshot builder (in process: no broker, so
 * thousands of gates run in minutes).
 *
 *   npm run build && node simulator/dist/bench/calibration/calibration.js [--seeds 243] [--power-seeds 30] [--control 500] [--quick]
 *
 * Writes docs/canary-calibration.md (tables), docs/canary-calibration.svg (power plot) and
 * simulator/bench/calibration/results.json (every cell).
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { DEFAULT_GATE_POLICY, judgeSnapshot, planPower, snapshotFromTelemetry } from '@fleet/coordinator';
import { generateFleet, MODELS, type FleetSpec } from './canary-fleet.js';
import { powerChart } from './svg-plot.js';
import { Rng } from '../../rng.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const quick = args.includes('--quick');
const HEALTHY_SEEDS = arg('--seeds', quick ? 27 : 243);
const POWER_SEEDS = arg('--power-seeds', quick ? 6 : 30);
const CONTROL = arg('--control', 500);
const SIZES = [10, 50, 200] as const;
const SOAKS = [1, 6, 24] as const;
const RATIOS = [1.5, 2, 3, 5] as const;
const MIXES: Record<string, number>[] = [
  { 'sensor-v2': 5, 'gateway-x': 3, 'cam-mini': 2 },
  { 'sensor-v2': 1, 'gateway-x': 1 },
  { 'gateway-x': 2, 'cam-mini': 1 },
  { 'sensor-v2': 1, 'gateway-x': 1, 'cam-mini': 1 },
];
const FROM: Record<string, number>[] = [{ '2.0.3': 7, '2.0.1': 3 }, { '2.0.3': 1 }, { '2.0.3': 1, '2.0.1': 1, '1.9.8': 1 }];

type Verdict = 'Proceed' | 'Monitor' | 'Abort';

/** One gate: a fleet through the pipeline, judged. */
async function gate(spec: FleetSpec): Promise<{ verdict: Verdict; rule: string }> {
  const fleet = generateFleet(spec);
  const gapMs = 4 * spec.intervalMin * 60_000;
  const snapshot = await snapshotFromTelemetry({
    deploymentId: 'calibration',
    wave: 0,
    toVersion: fleet.toVersion,
    window: fleet.window,
    devices: fleet.devices,
    telemetry: fleet.telemetry,
    statuses: fleet.statuses,
    store: { maxExposureGapMs: gapMs, rollupSlotMs: Math.max(60_000, Math.floor((spec.hours * 3_600_000) / 48 / 60_000) * 60_000) },
    silentAfterMs: gapMs,
  });
  const v = judgeSnapshot(snapshot, DEFAULT_GATE_POLICY);
  return { verdict: v.recommendation, rule: v.rule };
}

function baseSpec(seed: string, canary: number, hours: number): FleetSpec {
  const rng = new Rng(`${seed}/fleet`);
  return {
    seed,
    hours,
    intervalMin: (hours * 60) / 12,
    canary,
    control: CONTROL,
    models: MIXES[rng.int(0, MIXES.length - 1)]!,
    fromVersions: FROM[rng.int(0, FROM.length - 1)]!,
    toVersion: '2.1.0',
    noise: rng.uniform(0.8, 2),
  };
}

/** Crash rate per device-day of a fleet mix (the planner's baseline). */
function baselinePerDay(mix: Record<string, number>): number {
  const total = Object.values(mix).reduce((a, b) => a + b, 0);
  return (24 * Object.entries(mix).reduce((a, [m, w]) => a + w * MODELS[m]!.rates.crashes, 0)) / total;
}

const pct = (k: number, n: number): string => `${((100 * k) / n).toFixed(1)} %`;
const t0 = performance.now();
const log = (s: string): void => console.log(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${s}`);

// 1. Healthy releases: every size × soak combination equally often, random mixes and noise.
const healthy = { runs: 0, Proceed: 0, Monitor: 0, Abort: 0, byCell: {} as Record<string, Record<Verdict, number>>, aborts: [] as string[], monitorRules: {} as Record<string, number> };
for (let i = 0; i < HEALTHY_SEEDS; i++) {
  const size = SIZES[i % 3]!;
  const soak = SOAKS[Math.floor(i / 3) % 3]!;
  const { verdict, rule } = await gate(baseSpec(`healthy-${i}`, size, soak));
  healthy.runs++;
  healthy[verdict]++;
  const cell = (healthy.byCell[`${size}/${soak}`] ??= { Proceed: 0, Monitor: 0, Abort: 0 });
  cell[verdict]++;
  if (verdict === 'Abort') healthy.aborts.push(`healthy-${i} (${size} canaries, ${soak} h): ${rule}`);
  if (verdict === 'Monitor') healthy.monitorRules[rule.replace(/[:[@].*$/, '')] = (healthy.monitorRules[rule.replace(/[:[@].*$/, '')] ?? 0) + 1;
  if ((i + 1) % 27 === 0) log(`healthy ${i + 1}/${HEALTHY_SEEDS}: ${healthy.Abort} aborts, ${healthy.Monitor} holds`);
}

// 2. Power: crash ×R on every canary, from the start of the soak.
interface Cell { ratio: number; canaries: number; soakH: number; runs: number; abort: number; hold: number; planned: number }
const cells: Cell[] = [];
for (const ratio of RATIOS) {
  for (const soakH of SOAKS) {
    for (const canaries of SIZES) {
      const cell: Cell = { ratio, canaries, soakH, runs: 0, abort: 0, hold: 0, planned: 0 };
      let planned = 0;
      for (let j = 0; j < POWER_SEEDS; j++) {
        const spec = { ...baseSpec(`power-${ratio}-${canaries}-${soakH}-${j}`, canaries, soakH), effect: { rates: { crashes: ratio } } };
        const { verdict } = await gate(spec);
        cell.runs++;
        if (verdict === 'Abort') cell.abort++;
        if (verdict !== 'Proceed') cell.hold++;
        planned += planPower({ canaries, control: CONTROL, baselinePerDeviceDay: baselinePerDay(spec.models), ratio, soakH }).powerAbort;
      }
      cell.planned = planned / POWER_SEEDS;
      cells.push(cell);
      log(`crash ×${ratio}, ${canaries} canaries, ${soakH} h: aborted ${cell.abort}/${cell.runs}, held ${cell.hold - cell.abort}`);
    }
  }
}

const seconds = (performance.now() - t0) / 1000;
const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`;
mkdirSync('docs', { recursive: true });
writeFileSync('simulator/bench/calibration/results.json', `${JSON.stringify({ machine, seconds: Math.round(seconds), control: CONTROL, healthy, cells }, null, 2)}\n`);

const falseAbort = healthy.Abort / healthy.runs;
const lines: string[] = [
  '# Canary judge calibration',
  '',
  'Generated by `npm run build && node simulator/dist/bench/calibration/calibration.js' + (quick ? ' --quick' : '') + (HEALTHY_SEEDS !== 243 ? ` --seeds ${HEALTHY_SEEDS}` : '') + (POWER_SEEDS !== 30 ? ` --power-seeds ${POWER_SEEDS}` : '') + (CONTROL !== 500 ? ` --control ${CONTROL}` : '') + '`',
  `(${Math.round(seconds)} s on ${machine}). Every gate is a seeded synthetic fleet — a random mix of three hardware`,
  'models and of one to three from-versions, device-to-device spread 0.8–2× the usual — whose telemetry messages and',
  "canary statuses go through the coordinator's real telemetry store and snapshot builder, then the statistical judge",
  `with its default settings. The control is ${CONTROL} devices; canaries install 2–20 minutes into the soak. The`,
  'design and the tests behind these numbers are in [canary-judge.md](canary-judge.md).',
  '',
  '## Healthy releases',
  '',
  `${healthy.runs} releases that change nothing, spread evenly over canary sizes 10/50/200 and soaks of 1/6/24 h:`,
  '',
  `- **false aborts: ${healthy.Abort} of ${healthy.runs} (${pct(healthy.Abort, healthy.runs)})** — goal ≤ 1 %, ${falseAbort <= 0.01 ? 'met' : '**not met**'}${healthy.aborts.length ? ` (${healthy.aborts.join('; ')})` : ''}`,
  `- held at Monitor: ${healthy.Monitor} (${pct(healthy.Monitor, healthy.runs)}) — by rule: ${Object.entries(healthy.monitorRules).sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`).join(', ') || 'none'}`,
  `- proceeded: ${healthy.Proceed} (${pct(healthy.Proceed, healthy.runs)})`,
  '',
  '| canaries \\ soak | ' + SOAKS.map((s) => `${s} h`).join(' | ') + ' |',
  '|---|' + SOAKS.map(() => '---').join('|') + '|',
  ...SIZES.map((n) => `| ${n} | ` + SOAKS.map((s) => {
    const c = healthy.byCell[`${n}/${s}`];
    return c ? `${c.Proceed} P / ${c.Monitor} M / ${c.Abort} A` : '–';
  }).join(' | ') + ' |'),
  '',
  'A Monitor on a healthy release extends the soak; most come from the exposure floor (too few crashes expected',
  'at the control\'s rates to judge anything, `sufficiency:exposure`) on short soaks of small waves — which is the',
  'point of `fleet canary plan`.',
  '',
  '## Detection power',
  '',
  `Crash rate ×R on every canary from the start of the soak, ${POWER_SEEDS} fleets per cell. Each cell: **rolled back**`,
  '(Abort) / at least held (Monitor or Abort), and in brackets the soak planner\'s predicted rollback probability for',
  'the same cell (one stratum, no overdispersion: the best case). At a 1 h soak most holds are the exposure floor,',
  'as on healthy releases above, not detections.',
  '',
  ...RATIOS.flatMap((r) => [
    `**crash ×${r}**`,
    '',
    '| canaries \\ soak | ' + SOAKS.map((s) => `${s} h`).join(' | ') + ' |',
    '|---|' + SOAKS.map(() => '---').join('|') + '|',
    ...SIZES.map((n) => `| ${n} | ` + SOAKS.map((s) => {
      const c = cells.find((x) => x.ratio === r && x.canaries === n && x.soakH === s)!;
      return `**${pct(c.abort, c.runs)}** / ${pct(c.hold, c.runs)} (${(c.planned * 100).toFixed(0)} %)`;
    }).join(' | ') + ' |'),
    '',
  ]),
  '![detection power](canary-calibration.svg)',
  '',
];
writeFileSync('docs/canary-calibration.md', `${lines.join('\n')}\n`);
const colours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728'];
writeFileSync('docs/canary-calibration.svg', powerChart(
  `Rollback probability of a crash regression (control ${CONTROL} devices, ${POWER_SEEDS} fleets per point)`,
  SOAKS.map((s) => ({
    title: `${s} h soak`,
    series: RATIOS.map((r, k) => ({
      label: `crash ×${r}`,
      colour: colours[k]!,
      points: SIZES.map((n) => {
        const c = cells.find((x) => x.ratio === r && x.canaries === n && x.soakH === s)!;
        return [n, c.abort / c.runs] as [number, number];
      }),
    })),
  })),
  [...SIZES],
  0.8,
));
log(`false aborts ${healthy.Abort}/${healthy.runs}; wrote docs/canary-calibration.md, docs/canary-calibration.svg, simulator/bench/calibration/results.json`);
