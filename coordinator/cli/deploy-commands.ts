/**
 * `fleet deploy create|list|status|pause|resume|promote|abort|rollback|approve|start` over the admin
 * API; how a deployment is shown (and `status --watch`) lives in deploy-status.ts.
 */
import type { Command } from 'commander';
import { parseDuration } from '@fleet/firmware/duration';
import { FleetError } from '@fleet/protocol/errors';
import { addConnectionOptions, client } from './device-commands.js';
import type { ConnectionOptions } from './admin-client.js';
import { ago, list, table } from './format.js';
import { renderStatus, watch, type DeploymentView } from './deploy-status.js';

type CreateOpts = ConnectionOptions & {
  firmware: string;
  waves?: string;
  soak?: string;
  deadline?: string;
  minDevices?: string;
  target?: string[];
  from?: string;
  tags?: string[];
  approve?: string[];
  window?: string;
  windowDuration?: string;
  windowTz?: string;
  draft?: boolean;
  id?: string;
  description?: string;
  detect?: string;
  baseline?: string;
  warmUp?: string;
  minExpectedEvents?: string;
  json?: boolean;
};

export function registerDeployCommands(program: Command): void {
  const deploy = program.command('deploy').description('wave-based rollouts: create, watch and steer deployments');

  addConnectionOptions(
    deploy
      .command('create')
      .description('roll a firmware version out in waves (default 1,5,25,100 % with a 30m soak each)')
      .requiredOption('--firmware <version>', 'uploaded firmware version to deploy')
      .option('--waves <percents>', 'cumulative wave sizes in percent', '1,5,25,100')
      .option('--soak <duration>', 'soak after each wave, e.g. 30m', '30m')
      .option('--deadline <duration>', 'per wave: silent devices count as failed after this', '2h')
      .option('--min-devices <n>', 'devices that must report before a wave may complete early', '20')
      .option('--target <models>', 'hardware models (default: every model the firmware is built for)', list)
      .option('--from <range>', 'semver range of current versions to update', '*')
      .option('--tags <tags>', 'only devices with all these tags', list)
      .option('--approve <waves>', 'wave numbers (1-based) that need `fleet deploy approve` before they start', list)
      .option('--window <cron>', 'maintenance window start times (cron, e.g. "0 2 * * *") in which waves may start')
      .option('--window-duration <duration>', 'length of each maintenance window', '4h')
      .option('--window-tz <zone>', 'IANA time zone the --window cron is read in, e.g. Europe/Berlin (daylight saving followed)', 'UTC')
      .option('--draft', 'create without starting; start with `fleet deploy start <id>`')
      .option('--id <id>', 'deployment id (default: generated)')
      .option('--description <text>', 'free text for operators')
      .option('--detect <ratio>', 'warn about canary waves that cannot roll back this regression (rate ratio, e.g. 2x; with --baseline)')
      .option('--baseline <rate>', 'baseline crashes per device-day for --detect', '0.24')
      .option('--warm-up <duration>', "judge: time after each canary's update left out of its metrics (default the coordinator's, 5m)")
      .option('--min-expected-events <n>', 'judge: canary events expected at control rates below which the gate holds (default 5)')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: CreateOpts) => {
    const percents = (opts.waves ?? '1,5,25,100').split(',').map((s) => Number(s.trim()));
    if (percents.some((p) => !(p > 0 && p <= 100))) throw new FleetError('invalid-input', `--waves ${opts.waves}: give cumulative percentages in (0, 100], e.g. 1,5,25,100`);
    if (percents[percents.length - 1] !== 100) {
      throw new FleetError(
        'invalid-input',
        `--waves ${opts.waves} stops at ${percents[percents.length - 1]} %: the last wave must be 100 (waves are cumulative shares of the target); to hold before a wave, add --approve <wave number>`,
      );
    }
    const approve = new Set((opts.approve ?? []).map((s) => Number(s) - 1));
    const soakMs = parseDuration(opts.soak ?? '30m');
    const deadlineMs = parseDuration(opts.deadline ?? '2h');
    const minDevicesReporting = Number(opts.minDevices ?? '20');
    const judge = {
      ...(opts.detect ? { plan: { ratio: Number(opts.detect.replace(/x$/i, '')), baselinePerDeviceDay: Number(opts.baseline ?? '0.24') } } : {}),
      ...(opts.warmUp ? { warmUpMs: parseDuration(opts.warmUp) } : {}),
      ...(opts.minExpectedEvents ? { minExpectedEvents: Number(opts.minExpectedEvents) } : {}),
    };
    const api = client(opts);
    let models = opts.target;
    if (!models?.length) models = (await api.get<{ hardware: string[] }>(`/v1/firmware/${encodeURIComponent(opts.firmware)}`)).hardware;
    const body = {
      firmwareVersion: opts.firmware,
      target: { hardwareModels: models, versionRange: opts.from ?? '*', tags: opts.tags ?? [] },
      waves: percents.map((percent, i) => ({ percent, soakMs, deadlineMs, minDevicesReporting, requiresApproval: approve.has(i) })),
      maintenanceWindows: opts.window ? [{ cron: opts.window, durationMs: parseDuration(opts.windowDuration ?? '4h'), timeZone: opts.windowTz ?? 'UTC' }] : [],
      draft: opts.draft ?? false,
      ...(opts.id ? { id: opts.id } : {}),
      ...(opts.description ? { description: opts.description } : {}),
      ...(Object.keys(judge).length ? { judge } : {}),
    };
    const d = await api.post<DeploymentView>('/v1/deployments', body);
    if (opts.json) return console.log(JSON.stringify(d, null, 2));
    console.log(renderStatus(d));
    for (const w of d.warnings ?? []) console.log(`warning: ${w}`);
    console.log(`\nfollow it with \`fleet deploy status ${d.id} --watch\``);
  });

  addConnectionOptions(deploy.command('list').description('deployments, newest first').option('--json', 'machine-readable output')).action(
    async (opts: ConnectionOptions & { json?: boolean }) => {
      const res = await client(opts).get<{ deployments: DeploymentView[] }>('/v1/deployments');
      if (opts.json) return console.log(JSON.stringify(res, null, 2));
      if (!res.deployments.length) return console.log('no deployments yet; create one with `fleet deploy create --firmware <version>`');
      console.log(
        table(
          ['id', 'firmware', 'phase', 'wave', 'committed', 'failed', 'created'],
          res.deployments.map((d) => [
            d.id, d.firmwareVersion, d.phase + (d.paused ? ' (paused)' : ''), `${d.current + 1}/${d.waves.length}`,
            d.waves.reduce((s, w) => s + (w.counts['committed'] ?? 0), 0),
            d.waves.reduce((s, w) => s + (w.counts['failed'] ?? 0) + (w.counts['timedOut'] ?? 0), 0),
            ago(d.createdAt),
          ]),
        ),
      );
    },
  );

  addConnectionOptions(
    deploy
      .command('status <id>')
      .description('waves, device progress and gate decisions of one deployment')
      .option('--watch', 'redraw progress until the deployment settles')
      .option('--interval <duration>', 'poll interval for --watch', '2s')
      .option('--json', 'machine-readable output'),
  ).action(async (id: string, opts: ConnectionOptions & { watch?: boolean; interval: string; json?: boolean }) => {
    const api = client(opts);
    if (opts.watch && !opts.json) return watch(api, id, parseDuration(opts.interval));
    const d = await api.get<DeploymentView>(`/v1/deployments/${encodeURIComponent(id)}`);
    if (opts.json) return console.log(JSON.stringify(d, null, 2));
    console.log(renderStatus(d));
  });

  // Every state-changing action takes --reason; the coordinator records it in the audit log.
  const action = (name: string, description: string, extra?: (c: Command) => Command, body?: (o: Record<string, unknown>) => Record<string, unknown>): void => {
    let cmd = deploy
      .command(`${name} <id>`)
      .description(description)
      .option('--reason <text>', 'why (recorded in the audit log)')
      .option('--json', 'machine-readable output');
    if (extra) cmd = extra(cmd);
    addConnectionOptions(cmd).action(async (id: string, opts: ConnectionOptions & Record<string, unknown>) => {
      const d = await client(opts).post<DeploymentView>(`/v1/deployments/${encodeURIComponent(id)}/actions`, {
        type: name,
        ...(typeof opts['reason'] === 'string' ? { reason: opts['reason'] } : {}),
        ...(body ? body(opts) : {}),
      });
      if (opts['json']) return console.log(JSON.stringify(d, null, 2));
      console.log(renderStatus(d));
    });
  };
  action('start', 'start a draft deployment');
  action('pause', 'hold the rollout: no new wave starts, deadlines stop');
  action('resume', 'continue a paused rollout');
  action('promote', 'skip what the current wave waits for (stragglers, the rest of the soak, a window)');
  action('abort', 'stop the rollout and roll back every exposed device', (c) => c.option('--no-rollback', 'stop without rolling back'), (o) => ({
    rollback: o['rollback'] !== false,
  }));
  action('rollback', 'roll back every exposed device (also after completion)');
  action('approve', 'approve the next wave that requires approval', (c) => c.option('--wave <n>', 'wave number (1-based)'), (o) => {
    if (typeof o['wave'] !== 'string') return {};
    const wave = Number(o['wave']);
    if (!Number.isInteger(wave) || wave < 1) throw new FleetError('invalid-input', `--wave ${o['wave']}: give a wave number from 1, as \`fleet deploy status\` shows them`);
    return { wave: wave - 1 };
  });
}
