/**
 * `fleet users add|list|remove|token|passwd` and `fleet audit` over the admin API. Tokens are printed
 * once, when issued: only their hash is stored.
 */
import type { Command } from 'commander';
import { ago, table } from './format.js';
import { addConnectionOptions, client } from './device-commands.js';
import type { ConnectionOptions } from './admin-client.js';
import { readNewPassword } from './secret-input.js';
import type { AuditRecord } from '../store/audit-log.js';
import { definedProps } from '@fleet/firmware/defined-props';

interface UserView {
  name: string;
  role: string;
  builtin: boolean;
  hasPassword: boolean;
  hasToken: boolean;
  createdAt: number | null;
  createdBy: string | null;
  tokenIssuedAt: number | null;
  lastLoginAt: number | null;
}


const ROLES = 'viewer (reads), operator (deploys and steers rollouts) or admin (also users, devices, flags, firmware)';


function printToken(name: string, token: string): void {
  console.log(`API token for ${name} (shown once; only its hash is kept — give it to ${name} for FLEET_TOKEN or the console's login):`);
  console.log(token);
}

export function registerUserCommands(program: Command): void {
  const users = program.command('users').description('named users of the admin API and console: roles, API tokens, passwords');

  addConnectionOptions(
    users
      .command('add <name>')
      .description('add a user and print their API token (once)')
      .requiredOption('--role <role>', ROLES)
      .option('--password-stdin', 'read a password for the web login from stdin (12+ characters)')
      .option('--reason <text>', 'why (recorded in the audit log)')
      .option('--json', 'machine-readable output'),
  ).action(async (name: string, opts: ConnectionOptions & { role: string; passwordStdin?: boolean; reason?: string; json?: boolean }) => {
    const password = opts.passwordStdin ? await readNewPassword(true) : undefined;
    const res = await client(opts).post<{ user: UserView; token: string }>('/v1/users', { name, role: opts.role, ...definedProps({ password, reason: opts.reason }) });
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(`added ${res.user.name} (${res.user.role})${res.user.hasPassword ? ' with a password for the web login' : ''}`);
    printToken(res.user.name, res.token);
  });

  addConnectionOptions(users.command('list').description('users with their role and credentials').option('--json', 'machine-readable output')).action(
    async (opts: ConnectionOptions & { json?: boolean }) => {
      const res = await client(opts).get<{ users: UserView[] }>('/v1/users');
      if (opts.json) return console.log(JSON.stringify(res, null, 2));
      console.log(
        table(
          ['user', 'role', 'password', 'token issued', 'last login', 'added'],
          res.users.map((u) => [
            u.builtin ? `${u.name} (built-in)` : u.name,
            u.role,
            u.hasPassword ? 'yes' : '-',
            u.builtin ? 'FLEET_ADMIN_TOKEN' : ago(u.tokenIssuedAt),
            ago(u.lastLoginAt),
            u.createdBy !== null ? `${ago(u.createdAt)} by ${u.createdBy}` : '-',
          ]),
        ),
      );
    },
  );

  addConnectionOptions(users.command('remove <name>').description('remove a user: their token and sessions stop working at once').option('--reason <text>', 'why (recorded in the audit log)')).action(
    async (name: string, opts: ConnectionOptions & { reason?: string }) => {
      const q = opts.reason !== undefined ? `?${new URLSearchParams({ reason: opts.reason }).toString()}` : '';
      await client(opts).request('DELETE', `/v1/users/${encodeURIComponent(name)}${q}`);
      console.log(`removed ${name}`);
    },
  );

  addConnectionOptions(
    users
      .command('token <name>')
      .description("issue a new API token for a user and print it (once); the old one stops working")
      .option('--reason <text>', 'why (recorded in the audit log)')
      .option('--json', 'machine-readable output'),
  ).action(async (name: string, opts: ConnectionOptions & { reason?: string; json?: boolean }) => {
    const res = await client(opts).post<{ user: UserView; token: string }>(`/v1/users/${encodeURIComponent(name)}/token`, definedProps({ reason: opts.reason }));
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    printToken(res.user.name, res.token);
  });

  addConnectionOptions(
    users
      .command('passwd <name>')
      .description("set a user's password for the web login: typed twice at a terminal, else read from stdin")
      .option('--password-stdin', 'read the password from stdin')
      .option('--reason <text>', 'why (recorded in the audit log)'),
  ).action(async (name: string, opts: ConnectionOptions & { passwordStdin?: boolean; reason?: string }) => {
    const password = await readNewPassword(Boolean(opts.passwordStdin));
    await client(opts).request('PUT', `/v1/users/${encodeURIComponent(name)}/password`, { password, ...definedProps({ reason: opts.reason }) });
    console.log(`password of ${name} set; their other web sessions have ended`);
  });

  addConnectionOptions(
    program
      .command('audit')
      .description('the audit log, newest first: who did what, when, from where, and why')
      .option('--subject <s>', 'only entries about this deployment, device, user or flag')
      .option('--user <name>', 'only entries made by this user')
      .option('--limit <n>', 'at most this many entries', '50')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: ConnectionOptions & { subject?: string; user?: string; limit: string; json?: boolean }) => {
    const q = new URLSearchParams({ limit: opts.limit });
    if (opts.subject !== undefined) q.set('subject', opts.subject);
    if (opts.user !== undefined) q.set('user', opts.user);
    const res = await client(opts).get<{ entries: AuditRecord[] }>(`/v1/audit?${q.toString()}`);
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(
      table(
        ['when', 'who', 'from', 'action', 'subject', 'reason'],
        res.entries.map((e) => [
          new Date(e.at).toISOString().slice(0, 19).replace('T', ' '),
          e.user !== null ? `${e.user} (${e.role ?? '?'})` : e.actor,
          e.source ?? '-',
          e.action,
          e.subject ?? '-',
          e.reason ?? '-',
        ]),
      ),
    );
  });
}
