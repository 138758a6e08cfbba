/**
 * `fleet flags list|set|kill|evaluate|history|delete` over the admin API. Every change is audited by the
 * coordinator with the operator as actor.
 *
 *   fleet flags kill canary.ai                                  # AI off fleet-wide, at the next gate
 *   fleet flags set canary.ai --on --rollout 100 \
 *     --variant stable:90:promptId=risk-stable-v1 --variant exp:10:promptId=risk-experimental-v2,model=gpt-4o-mini
 */
import type { Command } from 'commander';
import { ConfigError } from '@fleet/protocol/errors';
import { AdminClient, type ConnectionOptions } from '../cli/admin-client.js';
import { addConnectionOptions } from '../cli/device-commands.js';
import { ago, table } from '../cli/format.js';
import type { FlagEvaluation, FlagVariant, StoredFlag } from './flag-model.js';
import type { FlagChange } from './flag-store.js';

type ListedFlag = StoredFlag & { stored: boolean };

/** Parses `name:weight[:key=value,key=value]`. */
export function parseVariant(spec: string, previous: FlagVariant[] = []): FlagVariant[] {
  const m = /^([A-Za-z0-9_.-]{1,64}):(\d+)(?::(.*))?$/.exec(spec);
  if (!m) throw new ConfigError(`--variant ${JSON.stringify(spec)} must look like name:weight or name:weight:key=value,key=value`);
  const payload: Record<string, string> = {};
  for (const kv of (m[3] ?? '').split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new ConfigError(`--variant payload ${JSON.stringify(kv)} must be key=value`);
    payload[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return [...previous, { name: m[1]!, weight: Number(m[2]), payload }];
}

/** On; off by default (a well-known flag nobody changed); or killed (the kill switch, or --off). */
const state = (f: StoredFlag & { stored?: boolean }): string => (f.enabled ? 'on' : f.stored === false ? 'off (default)' : 'OFF (killed)');
const variants = (f: StoredFlag): string => f.variants.map((v) => `${v.name}:${v.weight}${Object.keys(v.payload).length ? ` ${Object.entries(v.payload).map(([k, x]) => `${k}=${x}`).join(',')}` : ''}`).join('\n') || '-';

function printFlag(f: StoredFlag): void {
  console.log(`${f.name} [${f.scope}] ${state(f)}, rollout ${f.rollout}%, version ${f.version}`);
  if (f.variants.length) console.log(`  variants: ${variants(f).replace(/\n/g, '; ')}`);
}

export function registerFlagCommands(program: Command): Command {
  const flags = program.command('flags').description('feature flags: kill switches, percentage rollouts, variants (audited)');
  const client = (o: ConnectionOptions) => AdminClient.resolve(o);

  addConnectionOptions(flags.command('list').description('list flags (stored and well-known defaults)').option('--json', 'machine-readable output'))
    .action(async (opts: ConnectionOptions & { json?: boolean }) => {
      const res = await client(opts).get<{ version: number; flags: ListedFlag[] }>('/v1/flags');
      if (opts.json) return console.log(JSON.stringify(res, null, 2));
      console.log(table(
        ['flag', 'scope', 'state', 'rollout', 'variants', 'version', 'updated'],
        res.flags.map((f) => [f.name, f.scope, state(f), `${f.rollout}%`, variants(f), f.stored ? f.version : 'default', f.stored ? `${ago(f.updatedAt)} by ${f.updatedBy}` : '-']),
      ));
      console.log(`flag store version ${res.version}`);
    });

  addConnectionOptions(
    flags
      .command('set <name>')
      .description('create or change a flag; unspecified fields keep their current value')
      .option('--on', 'enable')
      .option('--off', 'disable (same as kill)')
      .option('--rollout <percent>', 'percentage of keys (devices, or waves for analyzer flags) that see it', Number)
      .option('--variant <name:weight[:k=v,...]>', 'weighted variant with payload (repeat; replaces all variants)', parseVariant)
      .option('--no-variants', 'remove all variants')
      .option('--scope <scope>', 'coordinator or device (device flags are published to agents)')
      .option('--group <id>', 'bucketing group id (default: the flag name)')
      .option('--description <text>', 'what the flag does')
      .option('--reason <text>', 'why (recorded in the audit log)')
      .option('--json', 'machine-readable output'),
  ).action(async (name: string, opts: ConnectionOptions & { on?: boolean; off?: boolean; rollout?: number; variant?: FlagVariant[] | false; variants?: boolean; scope?: string; group?: string; description?: string; reason?: string; json?: boolean }) => {
    if (opts.on && opts.off) throw new ConfigError('--on and --off contradict each other');
    if (opts.rollout !== undefined && !(opts.rollout >= 0 && opts.rollout <= 100)) throw new ConfigError('--rollout must be a number from 0 to 100');
    const body: Record<string, unknown> = {};
    if (opts.on) body['enabled'] = true;
    if (opts.off) body['enabled'] = false;
    if (opts.rollout !== undefined) body['rollout'] = opts.rollout;
    if (Array.isArray(opts.variant)) body['variants'] = opts.variant;
    if (opts.variants === false) body['variants'] = [];
    if (opts.scope !== undefined) body['scope'] = opts.scope;
    if (opts.group !== undefined) body['groupId'] = opts.group;
    if (opts.description !== undefined) body['description'] = opts.description;
    if (!Object.keys(body).length) throw new ConfigError('nothing to change: pass --on/--off, --rollout, --variant, --scope, --group or --description');
    if (opts.reason !== undefined) body['reason'] = opts.reason;
    const f = await client(opts).request<StoredFlag>('PUT', `/v1/flags/${encodeURIComponent(name)}`, body);
    if (opts.json) return console.log(JSON.stringify(f, null, 2));
    printFlag(f);
  });

  addConnectionOptions(
    flags.command('kill <name>').description('kill switch: turn the flag off for everyone now').option('--reason <text>', 'why (recorded in the audit log)').option('--json', 'machine-readable output'),
  )
    .action(async (name: string, opts: ConnectionOptions & { reason?: string; json?: boolean }) => {
      const f = await client(opts).post<StoredFlag>(`/v1/flags/${encodeURIComponent(name)}/kill`, opts.reason !== undefined ? { reason: opts.reason } : {});
      if (opts.json) return console.log(JSON.stringify(f, null, 2));
      printFlag(f);
    });

  addConnectionOptions(flags.command('history <name>').description("a flag's change history (who, when, what)").option('--limit <n>', 'at most this many changes', '20').option('--json', 'machine-readable output'))
    .action(async (name: string, opts: ConnectionOptions & { limit: string; json?: boolean }) => {
      const res = await client(opts).get<{ changes: FlagChange[] }>(`/v1/flags/${encodeURIComponent(name)}/history?limit=${encodeURIComponent(opts.limit)}`);
      if (opts.json) return console.log(JSON.stringify(res, null, 2));
      console.log(table(['#', 'when', 'actor', 'action', 'enabled', 'rollout'], res.changes.map((c) => [
        c.id, new Date(c.at).toISOString(), c.actor, c.action,
        `${c.before ? String(c.before.enabled) : '-'} → ${c.after ? String(c.after.enabled) : '-'}`,
        `${c.before ? c.before.rollout : '-'} → ${c.after ? c.after.rollout : '-'}`,
      ])));
    });

  addConnectionOptions(
    flags
      .command('evaluate <name>')
      .description('what a flag gives one key: a device id, or a wave as <deploymentId>:<wave> for the canary.* flags')
      .requiredOption('--key <key>', 'stickiness key')
      .option('--json', 'machine-readable output'),
  ).action(async (name: string, opts: ConnectionOptions & { key: string; json?: boolean }) => {
    const e = await client(opts).get<FlagEvaluation>(`/v1/flags/${encodeURIComponent(name)}/evaluate?key=${encodeURIComponent(opts.key)}`);
    if (opts.json) return console.log(JSON.stringify(e, null, 2));
    const payload = e.variant && Object.keys(e.variant.payload).length ? ` (${Object.entries(e.variant.payload).map(([k, v]) => `${k}=${v}`).join(', ')})` : '';
    console.log(`${e.name} for ${opts.key}: ${e.enabled ? 'on' : 'off'} [${e.reason}]${e.variant ? `, variant ${e.variant.name}${payload}` : ''}`);
  });

  addConnectionOptions(flags.command('delete <name>').description('delete a stored flag (a well-known flag returns to its default)').option('--reason <text>', 'why (recorded in the audit log)'))
    .action(async (name: string, opts: ConnectionOptions & { reason?: string }) => {
      const q = opts.reason !== undefined ? `?${new URLSearchParams({ reason: opts.reason }).toString()}` : '';
      await client(opts).request('DELETE', `/v1/flags/${encodeURIComponent(name)}${q}`);
      console.log(`deleted ${name}`);
    });

  return flags;
}
