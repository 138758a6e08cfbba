/**
 * The load check: runs the demo and the end-to-end scenarios through the built `fleet` CLI, each in
 * its own process, N times, with CPU-burning processes beside them the whole time, and prints each
 * run's verdicts and how its clock ran. A safety verdict must not depend on how busy the CPU is: the
 * check passes when every run of every scenario gets the verdicts the scenario expects.
 *
 *   npm run load-check -- [--runs 5] [--burners 2] [--scenarios demo,good-releases,…] [--fixed-scale]
 *
 * Scenario names are bundled scenarios or the end-to-end ones (test/e2e/scenarios); a path works too.
 * The burners are `node -e 'for(;;){}'` children, killed by process id when the check ends, on any
 * exit path. I/O shell (child processes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { SimulationReport } from './report.js';
import { clockLine } from './report-format.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The built `fleet` executable of the repository this check runs in (cli/dist/fleet.js): started by path, never imported. */
const fleetCli = join(here, '..', '..', 'cli', 'dist', 'fleet.js');
const E2E_SCENARIOS = ['good-releases', 'bad-releases-metrics', 'bad-releases-subtle', 'bad-releases-boot', 'coordinator-restart'];
const DEFAULT_SCENARIOS = ['demo', ...E2E_SCENARIOS];

/** A bundled name stays a name; an end-to-end one becomes its file (from dist/ or from the sources). */
function scenarioArg(name: string): string {
  if (name.includes('/') || name.endsWith('.json')) return name;
  for (const root of [join(here, '..', '..'), join(here, '..')]) {
    const file = join(root, 'test', 'e2e', 'scenarios', `${name}.json`);
    if (existsSync(file)) return file;
  }
  return name;
}

interface RunResult {
  scenario: string;
  run: number;
  code: number | null;
  wallS: number;
  verdicts: string;
  ok: boolean;
  clock: string;
  problems: string[];
}

function runOnce(scenario: string, run: number, dir: string, fixedScale: boolean): Promise<RunResult> {
  const reportPath = join(dir, `${scenario.replace(/[^a-z0-9-]/gi, '_')}-${run}.json`);
  const args = [fleetCli, 'simulate', '--scenario', scenarioArg(scenario), '--report', reportPath, '--quiet', ...(fixedScale ? ['--fixed-scale'] : [])];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    child.once('exit', (code) => {
      void (async () => {
        const wallS = (performance.now() - started) / 1000;
        try {
          const report = JSON.parse(await readFile(reportPath, 'utf8')) as SimulationReport;
          const verdicts = report.releases.map((r) => `${r.version} ${r.outcome}${r.ok ? '' : ' (WRONG)'}`).join(', ');
          resolve({ scenario, run, code, wallS, verdicts, ok: report.ok && code === 0, clock: clockLine(report.clock), problems: report.releases.flatMap((r) => r.problems.map((p) => `${r.version}: ${p}`)) });
        } catch {
          resolve({ scenario, run, code, wallS, verdicts: 'no report', ok: false, clock: '', problems: [stderr.trim().split('\n').slice(-3).join(' | ') || `exit ${String(code)}`] });
        }
      })();
    });
  });
}

function startBurners(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
}

function stopBurners(burners: readonly ChildProcess[]): void {
  for (const b of burners) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '5' },
      burners: { type: 'string', default: '2' },
      scenarios: { type: 'string', default: DEFAULT_SCENARIOS.join(',') },
      'fixed-scale': { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  const burnerCount = Number(values.burners);
  if (!(Number.isInteger(runs) && runs > 0) || !(Number.isInteger(burnerCount) && burnerCount >= 0)) {
    console.error('error: --runs must be a positive integer and --burners a whole number');
    return 2;
  }
  if (!existsSync(fleetCli)) {
    console.error(`error: ${fleetCli} is missing; run \`npm run build\` first`);
    return 2;
  }
  const scenarios = values.scenarios.split(',').map((s) => s.trim()).filter(Boolean);
  const fixedScale = values['fixed-scale'];
  const dir = await mkdtemp(join(tmpdir(), 'fleet-load-check-'));
  const burners = startBurners(burnerCount);
  const onSignal = (): void => {
    stopBurners(burners);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  console.log(`load check: ${burnerCount} CPU burner(s) (pids ${burners.map((b) => b.pid).join(', ') || 'none'}) beside ${runs} run(s) of ${scenarios.join(', ')}; clock ${fixedScale ? 'fixed' : 'paced'}`);
  const results: RunResult[] = [];
  try {
    for (let run = 1; run <= runs; run++) {
      for (const scenario of scenarios) {
        const r = await runOnce(scenario, run, dir, fixedScale);
        results.push(r);
        console.log(`run ${run} ${scenario.padEnd(20)} ${r.ok ? 'OK  ' : 'FAIL'} ${r.wallS.toFixed(0).padStart(4)} s  ${r.verdicts}`);
        if (r.clock) console.log(`       ${r.clock}`);
        for (const p of r.problems) console.log(`       problem: ${p}`);
      }
    }
  } finally {
    stopBurners(burners);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await rm(dir, { recursive: true, force: true });
  }
  console.log('');
  let same = true;
  for (const scenario of scenarios) {
    const mine = results.filter((r) => r.scenario === scenario);
    const distinct = new Set(mine.map((r) => r.verdicts));
    const right = mine.filter((r) => r.ok).length;
    if (distinct.size !== 1 || right !== mine.length) same = false;
    console.log(`${scenario.padEnd(20)} ${right}/${mine.length} runs as expected; ${distinct.size === 1 ? 'the same verdicts every run' : `${distinct.size} different sets of verdicts`}: ${[...distinct].join(' | ')}`);
  }
  console.log(same ? 'RESULT: the same, expected verdicts in every run' : 'RESULT: FAILED — a verdict depended on the run');
  return same ? 0 : 1;
}

process.exitCode = await main();
