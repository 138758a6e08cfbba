/**
 * `fleet deploy create|list|status|pause|resume|promote|abort|rollback|approve|start` over the admin
 * API; `status --watch` redraws per-wave progress bars until the deployment settles.
 */
import type { Command } from 'commander';
import { parseDuration, formatDuration } from '../../firmware/duration.js';
import { FleetError } from '../../protocol/errors.js';
import { addConnectionOptions, client } from './device-commands.js';
import type { AdminClient, ConnectionOptions } from './admin-client.js';
import { ago, bar, list, table } from './format.js';

/** What the admin API returns for a deployment (see admin/deployment-routes.ts). */
export interface DeploymentView {
  id: string;
  firmwareVersion: string;
  phase: string;
  current: number;
  paused: boolean;
  pause?: { by: string; cause: string; reason?: string };
  waitingFor: string[];
  target: { hardwareModels: string[]; versionRange: string; tags: string[] };
  waves: {
    index: number;
    percent: number;
    status: string;
    soakMs: number;
    requiresApproval: boolean;
    startedAt?: number;
    soakEndsAt?: number;
    verdict?: string;
    counts: Record<string, number>;
  }[];
  rollback?: { exposed: number; confirmed: number; unreachable: number; refused?: number; completedAt?: number };
  abortReason?: string;
  createdAt: number;
  updatedAt: number;
  decisions?: { id: string; wave: number; at: number; final: { recommendation: string; rule?: string; issues?: string[] } }[];
  /** At creation: canary waves too small to judge. */
  warnings?: string[];
}

const SETTLED = new Set(['completed', 'aborted', 'rolled-back']);

function finished(c: Record<string, number>): number {
  return (c['committed'] ?? 0) + (c['failed'] ?? 0) + (c['timedOut'] ?? 0) + (c['ineligible'] ?? 0);
}

function expected(c: Record<string, number>): number {
  return Math.max(0, (c['tracked'] ?? 0) - (c['offline'] ?? 0));
}

export function renderStatus(d: DeploymentView, now = Date.now()): string {
  const lines: string[] = [];
  lines.push(`deployment ${d.id}: firmware ${d.firmwareVersion} → ${d.target.hardwareModels.join(',')} (${d.target.versionRange}${d.target.tags.length ? `, tags ${d.target.tags.join(',')}` : ''})`);
  let phase = `phase ${d.phase}${d.paused ? ' (PAUSED' + (d.pause?.reason ? `: ${d.pause.reason}` : '') + ')' : ''}`;
  if (d.waitingFor.length) phase += `, waiting for ${d.waitingFor.join(' and ')}`;
  lines.push(phase);
  if (d.abortReason) lines.push(`abort reason: ${d.abortReason}`);
  lines.push(
    table(
      ['wave', 'size', 'status', 'progress', 'ok', 'failed', 'timed out', 'in progress', 'waiting', 'verdict'],
      d.waves.map((w) => [
        w.index + 1,
        `${w.percent}%`,
        w.status + (w.status === 'soaking' && w.soakEndsAt ? ` (${formatDuration(Math.max(0, Math.round((w.soakEndsAt - now) / 1000)) * 1000)} left)` : '') +
          (w.requiresApproval && w.status === 'pending' ? ' [approval]' : ''),
        bar(finished(w.counts), expected(w.counts), 16),
        w.counts['committed'] ?? 0,
        w.counts['failed'] ?? 0,
        w.counts['timedOut'] ?? 0,
        w.counts['inProgress'] ?? 0,
        w.counts['waiting'] ?? 0,
        w.verdict ?? '-',
      ]),
    ),
  );
  if (d.rollback) {
    const refused = d.rollback.refused ?? 0;
    const floor = refused > 0 ? `, ${refused} refused (committed above their security floor; they stay)` : '';
    lines.push(`rollback: ${d.rollback.confirmed}/${d.rollback.exposed} back on the old version, ${d.rollback.unreachable} unreachable${floor} ${bar(d.rollback.confirmed + d.rollback.unreachable + refused, d.rollback.exposed, 16)}`);
  }
  for (const dec of d.decisions?.slice(-5) ?? []) {
    lines.push(`decision ${dec.id} (wave ${dec.wave + 1}, ${ago(dec.at, now)}): ${dec.final.recommendation}${dec.final.rule ? ` by ${dec.final.rule}` : ''}${dec.final.issues?.length ? ` — ${dec.final.issues.slice(0, 2).join('; ')}` : ''}`);
  }
  return lines.join('\n');
}

async function watch(api: AdminClient, id: string, intervalMs: number): Promise<void> {
  const { MultiBar, Presets } = await import('cli-progress');
  let multi: InstanceType<typeof MultiBar> | undefined;
  let bars: ReturnType<InstanceType<typeof MultiBar>['create']>[] = [];
  for (;;) {
    const d = await api.get<DeploymentView>(`/v1/deployments/${encodeURIComponent(id)}`);
    if (!process.stdout.isTTY) {
      console.log(renderStatus(d));
    } else {
      if (!multi) {
        console.log(`deployment ${d.id}: firmware ${d.firmwareVersion}`);
        multi = new MultiBar({ format: ' wave {wave} {bar} {value}/{total} devices | {status} | ok {ok} failed {failed} | {phase}', hideCursor: true, clearOnComplete: false }, Presets.shades_classic);
        bars = d.waves.map((w) => multi!.create(Math.max(1, expected(w.counts)), 0));
      }
      d.waves.forEach((w, i) => {
        const b = bars[i];
        if (!b) return;
        b.setTotal(Math.max(1, expected(w.counts)));
        b.update(finished(w.counts), {
          wave: `${w.index + 1} (${w.percent}%)`,
          status: w.status + (w.verdict ? ` → ${w.verdict}` : ''),
          ok: w.counts['committed'] ?? 0,
          failed: (w.counts['failed'] ?? 0) + (w.counts['timedOut'] ?? 0),
          phase: i === d.current ? `${d.phase}${d.paused ? ' (paused)' : ''}${d.waitingFor.length ? `, waiting for ${d.waitingFor.join('+')}` : ''}` : '',
        });
      });
    }
    if (SETTLED.has(d.phase) && !(d.phase === 'completed' && d.rollback && !d.rollback.completedAt)) {
      multi?.stop();
      if (multi) console.log(renderStatus(d));
      return;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

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
    const api = client(opts);
    const percents = (opts.waves ?? '1,5,25,100').split(',').map((s) => Number(s.trim()));
    if (percents.some((p) => !(p > 0 && p <= 100))) throw new FleetError('invalid-input', `--waves ${opts.waves}: give cumulative percentages in (0, 100], e.g. 1,5,25,100`);
    const approve = new Set((opts.approve ?? []).map((s) => Number(s) - 1));
    const soakMs = parseDuration(opts.soak ?? '30m');
    const deadlineMs = parseDuration(opts.deadline ?? '2h');
    const minDevicesReporting = Number(opts.minDevices ?? '20');
    const judge = {
      ...(opts.detect ? { plan: { ratio: Number(opts.detect.replace(/x$/i, '')), baselinePerDeviceDay: Number(opts.baseline ?? '0.24') } } : {}),
      ...(opts.warmUp ? { warmUpMs: parseDuration(opts.warmUp) } : {}),
      ...(opts.minExpectedEvents ? { minExpectedEvents: Number(opts.minExpectedEvents) } : {}),
    };
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

  const action = (name: string, description: string, extra?: (c: Command) => Command, body?: (o: Record<string, unknown>) => Record<string, unknown>): void => {
    let cmd = deploy.command(`${name} <id>`).description(description).option('--json', 'machine-readable output');
    if (extra) cmd = extra(cmd);
    addConnectionOptions(cmd).action(async (id: string, opts: ConnectionOptions & Record<string, unknown>) => {
      const d = await client(opts).post<DeploymentView>(`/v1/deployments/${encodeURIComponent(id)}/actions`, { type: name, ...(body ? body(opts) : {}) });
      if (opts['json']) return console.log(JSON.stringify(d, null, 2));
      console.log(renderStatus(d));
    });
  };
  const reason = (c: Command): Command => c.option('--reason <text>', 'why (recorded in the audit log)');
  const withReason = (o: Record<string, unknown>): Record<string, unknown> => (typeof o['reason'] === 'string' ? { reason: o['reason'] } : {});
  action('start', 'start a draft deployment');
  action('pause', 'hold the rollout: no new wave starts, deadlines stop', reason, withReason);
  action('resume', 'continue a paused rollout');
  action('promote', 'skip what the current wave waits for (stragglers, the rest of the soak, a window)');
  action('abort', 'stop the rollout and roll back every exposed device', (c) => reason(c).option('--no-rollback', 'stop without rolling back'), (o) => ({
    ...withReason(o),
    rollback: o['rollback'] !== false,
  }));
  action('rollback', 'roll back every exposed device (also after completion)', reason, withReason);
  action('approve', 'approve the next wave that requires approval', (c) => c.option('--wave <n>', 'wave number (1-based)'), (o) =>
    typeof o['wave'] === 'string' ? { wave: Number(o['wave']) - 1 } : {},
  );
}
