/**
 * `fleet simulate` and `fleet demo`. Heavy modules (the coordinator with its broker and database, the
 * agents) are imported inside the actions.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { ValidationError } from '@fleet/protocol/errors';
import { DeviceIdSchema } from '@fleet/protocol/ids';
import { formatIssues } from '@fleet/protocol/parse';
import type { Scenario } from './scenario.js';
import type { CoordinatorHandle } from './coordinator-handle.js';
import { SimulationError } from './errors.js';
import { parseDuration } from '@fleet/firmware/duration';

interface SimulateFlags {
  devices?: string;
  scenario: string;
  broker?: string;
  url?: string;
  token?: string;
  trust?: string;
  secrets?: string;
  minOnline?: string;
  onlineTimeout?: string;
  seed?: string;
  timeScale?: string;
  fixedScale?: boolean;
  report?: string;
  json?: boolean;
  quiet?: boolean;
  list?: boolean;
  processes?: string;
  sourceAddresses?: string;
}

/** `fleet devices provision --out` writes {deviceId: secret}. */
const SecretsFileSchema = z.record(DeviceIdSchema, z.string().min(1));

async function readSecrets(file: string): Promise<Map<string, string>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ValidationError(`--secrets ${file}`, [`cannot read it as JSON (${(err as Error).message}); write it with \`fleet devices provision <ids…> --out ${file}\``]);
  }
  const parsed = SecretsFileSchema.safeParse(value);
  if (!parsed.success) throw new ValidationError(`--secrets ${file}`, formatIssues(parsed.error));
  return new Map(Object.entries(parsed.data));
}

function share(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0 && n <= 1)) throw new ValidationError(flag, [`${JSON.stringify(value)} must be a share above 0 and at most 1, e.g. 0.95`]);
  return n;
}

function durationFlag(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new ValidationError(flag, [(err as Error).message]);
  }
}

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new ValidationError(flag, [`${JSON.stringify(value)} must be a positive number`]);
  return n;
}

function processCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new ValidationError('--processes', [`${JSON.stringify(value)} must be a whole number from 0 (devices in this process) to 64`]);
  return n;
}

function sourceAddresses(value: string): string[] {
  const list = value.split(',').map((a) => a.trim()).filter((a) => a.length > 0);
  const bad = list.filter((a) => isIP(a) === 0);
  if (list.length === 0 || bad.length) throw new ValidationError('--source-addresses', [`${JSON.stringify(value)} must be IP addresses separated by commas, e.g. 127.0.0.2,127.0.0.3`]);
  return list;
}

/** `--broker`: one URL, or the nodes of an embedded cluster separated by commas. */
function brokerUrls(value: string): string[] {
  const list = value.split(',').map((u) => u.trim()).filter((u) => u.length > 0);
  const bad = list.filter((u) => !URL.canParse(u) || !/^(mqtts?|wss?):$/.test(new URL(u).protocol));
  if (list.length === 0 || bad.length) throw new ValidationError('--broker', [`${JSON.stringify(value)} must be mqtt://, mqtts://, ws:// or wss:// URLs separated by commas, e.g. mqtt://a:1883,mqtt://b:1883`]);
  return list;
}

export function registerSimulatorCommands(program: Command): void {
  program
    .command('simulate')
    .description('simulate a fleet of real agents against a coordinator and report how a rollout went')
    .option('--scenario <name|file>', 'bundled scenario name or a scenario .json file (see --list)', 'good-release')
    .option('--devices <n>', 'number of simulated devices (default: the scenario\'s, 1000)')
    .option('--broker <url>', 'use a running coordinator\'s broker (mqtt://…) instead of an embedded one; needs --url and --token or FLEET_URL/FLEET_TOKEN. A comma-separated list names the nodes of an embedded cluster: every device is given them all and starts at the node its id picks')
    .option('--url <url>', 'admin API of the running coordinator (with --broker)')
    .option('--token <token>', 'operator token of the running coordinator (with --broker)')
    .option('--trust <dir>', 'trust store for the devices: the running coordinator\'s public key directory, <data-dir>/trust (with --broker)')
    .option('--secrets <file>', 'devices and their secrets from `fleet devices provision --out` (with --broker): used as they are, never rotated, e.g. for a broker that already knows them')
    .option('--min-online <share>', 'share of the fleet that must be online at the coordinator before the first release (default 1)')
    .option('--online-timeout <duration>', 'how long to wait for that share, e.g. 2m (default), after which the run stops without a rollout')
    .option('--seed <seed>', 'seed: the same seed gives the same fleet and the same faults')
    .option('--time-scale <k>', 'simulated seconds per real second (default: the scenario\'s, 300; slower while the machine cannot keep up); a running coordinator (--broker) keeps real time, so only 1 is accepted there')
    .option('--processes <n>', 'host the devices in n child processes, the coordinator in this one (default: the scenario\'s, 0: all in this process); each follows this process\'s simulated time')
    .option('--source-addresses <list>', 'comma-separated loopback addresses the device processes bind their sockets to, round-robin, e.g. 127.0.0.2,127.0.0.3 (one address has ~28,000 ports toward one broker)')
    .option('--fixed-scale', 'keep the time scale fixed whatever the load (verdicts may then depend on how busy the machine is)')
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
      const minOnlineShare = share('--min-online', flags.minOnline);
      const onlineTimeoutMs = flags.onlineTimeout !== undefined ? durationFlag('--online-timeout', flags.onlineTimeout) : undefined;
      if (flags.secrets !== undefined && flags.broker === undefined) {
        throw new SimulationError('invalid-input', '--secrets needs --broker: an embedded coordinator provisions its own devices');
      }
      if (flags.broker !== undefined && timeScale !== undefined && timeScale !== 1) {
        throw new SimulationError('time-scale', `--time-scale ${timeScale} cannot run against a running coordinator (--broker): it keeps real time, so its soaks and deadlines would not speed up with the devices; leave --time-scale out`);
      }
      const secrets = flags.secrets !== undefined ? await readSecrets(flags.secrets) : undefined;
      const processes = flags.processes !== undefined ? processCount(flags.processes) : undefined;
      const localAddresses = flags.sourceAddresses !== undefined ? sourceAddresses(flags.sourceAddresses) : undefined;
      const code = await runAndReport({
        scenario,
        ...(processes !== undefined ? { processes } : {}),
        ...(localAddresses !== undefined ? { localAddresses } : {}),
        ...(devices !== undefined ? { devices: Math.round(devices) } : {}),
        ...(timeScale !== undefined ? { timeScale } : {}),
        ...(minOnlineShare !== undefined ? { minOnlineShare } : {}),
        ...(onlineTimeoutMs !== undefined ? { onlineTimeoutMs } : {}),
        ...(flags.fixedScale ? { fixedScale: true } : {}),
        ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
        ...(flags.broker !== undefined
          ? { broker: { urls: brokerUrls(flags.broker), adminUrl: flags.url ?? process.env['FLEET_URL'], token: flags.token ?? process.env['FLEET_TOKEN'], trustDir: flags.trust, ...(secrets ? { secrets } : {}) } }
          : {}),
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
      console.log(`Simulated time runs up to ${scenario.rollout.timeScale}× faster, each 30-minute soak in a few seconds — slower while the machine cannot keep up, so that a busy CPU never decides a verdict.\n`);
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
  processes?: number;
  localAddresses?: string[];
  devices?: number;
  timeScale?: number;
  minOnlineShare?: number;
  onlineTimeoutMs?: number;
  fixedScale?: boolean;
  seed?: string;
  broker?: { urls: string[]; adminUrl: string | undefined; token: string | undefined; trustDir: string | undefined; secrets?: Map<string, string> };
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
  // Against a shared coordinator: fresh device ids, and a tag the run's deployments target alone.
  const runId = broker ? `sim${randomBytes(3).toString('hex')}` : undefined;
  const report = await simulate({
    scenario: req.scenario,
    ...(req.devices !== undefined ? { devices: req.devices } : {}),
    ...(req.timeScale !== undefined ? { timeScale: req.timeScale } : {}),
    ...(req.minOnlineShare !== undefined ? { minOnlineShare: req.minOnlineShare } : {}),
    ...(req.onlineTimeoutMs !== undefined ? { onlineTimeoutMs: req.onlineTimeoutMs } : {}),
    ...(req.fixedScale ? { pacing: false } : {}),
    ...(req.seed !== undefined ? { seed: req.seed } : {}),
    ...(req.processes !== undefined ? { processes: req.processes } : {}),
    ...(req.localAddresses !== undefined ? { localAddresses: req.localAddresses } : {}),
    ...(broker && runId ? { realTime: true, runId, targetTag: runId, brokerUrls: broker.urls, ...(broker.secrets ? { secrets: broker.secrets } : {}) } : {}),
    coordinator: async (ctx) => {
      const c = broker ? await remoteCoordinator({ ...broker, url: broker.urls[0]! }) : await embeddedCoordinator(ctx);
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
