/**
 * `fleet simulate` and `fleet demo`. Heavy modules (the coordinator with its broker and database, the
 * agents) are imported inside the actions.
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ValidationError } from '../protocol/errors.js';
import type { Scenario } from './scenario.js';
import type { CoordinatorHandle } from './coordinator-handle.js';

interface SimulateFlags {
  devices?: string;
  scenario: string;
  broker?: string;
  url?: string;
  token?: string;
  trust?: string;
  seed?: string;
  timeScale?: string;
  report?: string;
  json?: boolean;
  quiet?: boolean;
  list?: boolean;
}

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new ValidationError(flag, [`${JSON.stringify(value)} must be a positive number`]);
  return n;
}

export function registerSimulatorCommands(program: Command): void {
  program
    .command('simulate')
    .description('simulate a fleet of real agents against a coordinator and report how a rollout went')
    .option('--scenario <name|file>', 'bundled scenario name or a scenario .json file (see --list)', 'good-release')
    .option('--devices <n>', 'number of simulated devices (default: the scenario\'s, 1000)')
    .option('--broker <url>', 'use a running coordinator\'s broker (mqtt://…) instead of an embedded one; needs --url and --token or FLEET_URL/FLEET_TOKEN')
    .option('--url <url>', 'admin API of the running coordinator (with --broker)')
    .option('--token <token>', 'operator token of the running coordinator (with --broker)')
    .option('--trust <dir>', 'trust store for the devices: the running coordinator\'s public key directory, <data-dir>/trust (with --broker)')
    .option('--seed <seed>', 'seed: the same seed gives the same fleet and the same faults')
    .option('--time-scale <k>', 'simulated seconds per real second (default: the scenario\'s, 300)')
    .option('--report <file>', 'write the JSON report here')
    .option('--json', 'print the JSON report instead of the summary')
    .option('--quiet', 'no live progress')
    .option('--list', 'list the bundled scenarios and exit')
    .action(async (flags: SimulateFlags) => {
      const { listScenarios, loadScenario } = await import('./scenario.js');
      if (flags.list) {
        for (const name of await listScenarios()) {
          const s = await loadScenario(name);
          console.log(`${name.padEnd(20)} ${s.description}`);
        }
        return;
      }
      const scenario = await loadScenario(flags.scenario);
      const devices = positiveNumber('--devices', flags.devices);
      const timeScale = positiveNumber('--time-scale', flags.timeScale);
      const code = await runAndReport({
        scenario,
        ...(devices !== undefined ? { devices: Math.round(devices) } : {}),
        ...(timeScale !== undefined ? { timeScale } : {}),
        ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
        ...(flags.broker !== undefined ? { broker: { url: flags.broker, adminUrl: flags.url ?? process.env['FLEET_URL'], token: flags.token ?? process.env['FLEET_TOKEN'], trustDir: flags.trust } } : {}),
        ...(flags.report !== undefined ? { reportPath: flags.report } : {}),
        json: flags.json === true,
        quiet: flags.quiet === true || flags.json === true,
      });
      process.exitCode = code;
    });

  program
    .command('demo')
    .description('the tour: an embedded coordinator and 1,000 simulated devices; a good release to 100%, then a bad one caught early and rolled back (about 1.5 minutes on 2 cores, no setup)')
    .option('--devices <n>', 'number of simulated devices', '1000')
    .option('--report <file>', 'write the JSON report here')
    .action(async (flags: { devices: string; report?: string }) => {
      const { loadScenario } = await import('./scenario.js');
      const scenario = await loadScenario('demo');
      const devices = positiveNumber('--devices', flags.devices) ?? 1000;
      console.log('fleet demo: an embedded coordinator (MQTT broker, SQLite, artifact server) and simulated devices running the real agent.');
      console.log(`Simulated time runs ${scenario.rollout.timeScale}× faster: each 30-minute soak takes a few seconds.\n`);
      process.exitCode = await runAndReport({
        scenario,
        devices: Math.round(devices),
        onCoordinator: (c) => {
          if (!c.dashboard) return;
          // The token travels in the fragment, which the browser never sends to the server.
          console.log(`Watch it in the browser: ${c.dashboard.url}#token=${encodeURIComponent(c.dashboard.token)}`);
          console.log(`(the operator console; or open ${c.dashboard.url} and log in with the token ${c.dashboard.token})\n`);
        },
        ...(flags.report !== undefined ? { reportPath: flags.report } : {}),
        json: false,
        quiet: false,
      });
    });
}

interface RunRequest {
  scenario: Scenario;
  devices?: number;
  timeScale?: number;
  seed?: string;
  broker?: { url: string; adminUrl: string | undefined; token: string | undefined; trustDir: string | undefined };
  reportPath?: string;
  json: boolean;
  quiet: boolean;
  /** Told of the coordinator once it is up (the demo prints its dashboard). */
  onCoordinator?: (c: CoordinatorHandle) => void;
}

/** Runs the simulation, prints progress and the summary, writes the report; returns the exit code. */
async function runAndReport(req: RunRequest): Promise<number> {
  const { simulate } = await import('./fleet-runner.js');
  const { formatReport } = await import('./report-format.js');
  const { progressPrinter } = await import('./progress-printer.js');
  const { embeddedCoordinator, remoteCoordinator } = await import('./coordinator-handles.js');
  const broker = req.broker;
  const report = await simulate({
    scenario: req.scenario,
    ...(req.devices !== undefined ? { devices: req.devices } : {}),
    ...(req.timeScale !== undefined ? { timeScale: req.timeScale } : {}),
    ...(req.seed !== undefined ? { seed: req.seed } : {}),
    coordinator: async (ctx) => {
      const c = broker ? await remoteCoordinator(broker) : await embeddedCoordinator(ctx);
      req.onCoordinator?.(c);
      return c;
    },
    ...(req.quiet ? {} : { onEvent: progressPrinter((line) => console.log(line)) }),
  });
  if (req.reportPath !== undefined) await writeFile(req.reportPath, JSON.stringify(report, null, 2) + '\n');
  if (req.json) console.log(JSON.stringify(report, null, 2));
  else {
    console.log('');
    console.log(formatReport(report));
    if (req.reportPath !== undefined) console.log(`\nJSON report written to ${req.reportPath}`);
  }
  return report.ok ? 0 : 1;
}
