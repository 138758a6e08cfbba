/**
 * `fleet users` and `fleet audit` as an operator runs them (the CLI as a child process) against a real
 * coordinator: a user added with a password from stdin, their token working and replaced, a viewer
 * refused with one line naming the role, and the audit log naming everyone.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { spawnFleet } from '../support/processes.js';
import { api, startCoordinator, tempDir } from './helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function fleet(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; out: string }> {
  const p = spawnFleet(args, { ...(options.input !== undefined ? { input: options.input } : {}), ...(options.env ? { env: options.env } : {}) });
  const exit = await p.exited;
  return { code: exit.code, out: p.output() };
}

describe('fleet users', () => {
  it('adds, lists, re-issues a token, sets a password, removes; fleet audit names who did it', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c: Coordinator = await startCoordinator(join(dir, 'data'));
    stops.push(() => c.stop());
    const dd = ['--data-dir', c.config.dataDir];

    const added = await fleet(['users', 'add', 'alice', '--role', 'operator', '--password-stdin', '--reason', 'on call', '--json', ...dd], { input: 'alice password 1\n' });
    expect(added.code, added.out).toBe(0);
    const { token, user } = JSON.parse(added.out) as { token: string; user: { name: string; role: string; hasPassword: boolean } };
    expect(user).toMatchObject({ name: 'alice', role: 'operator', hasPassword: true });
    // The password arrived without its newline: the web login takes it.
    const login = await fetch(`${c.httpUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice password 1' }) });
    expect(login.status).toBe(200);

    const viewer = await fleet(['users', 'add', 'victor', '--role', 'viewer', ...dd]);
    expect(viewer.code, viewer.out).toBe(0);
    expect(viewer.out).toMatch(/added victor \(viewer\)\nAPI token for victor \(shown once/);
    const victorToken = viewer.out.trim().split('\n').at(-1)!;

    const list = await fleet(['users', 'list', ...dd]);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/admin \(built-in\)\s*│ admin/);
    expect(list.out).toMatch(/alice\s*│ operator │ yes/);
    expect(list.out).toMatch(/victor\s*│ viewer\s*│ -/);

    // The user's own token, through FLEET_TOKEN; a viewer is told which role an action needs.
    const url = ['--url', c.httpUrl];
    expect((await fleet(['devices', 'list', ...url], { env: { FLEET_TOKEN: token } })).code).toBe(0);
    const refused = await fleet(['deploy', 'pause', 'd-1', ...url], { env: { FLEET_TOKEN: victorToken } });
    expect(refused.code).toBe(2);
    expect(refused.out.trim()).toBe('error [forbidden]: POST /v1/deployments/:id/actions needs the operator role; you are victor (viewer)');

    const renewed = await fleet(['users', 'token', 'alice', '--json', ...dd]);
    expect(renewed.code).toBe(0);
    const newToken = (JSON.parse(renewed.out) as { token: string }).token;
    const old = await fleet(['devices', 'list', ...url], { env: { FLEET_TOKEN: token } });
    expect(old.code).toBe(2);
    expect(old.out).toMatch(/^error \[unauthorized\]: the coordinator at .* refused the operator token from FLEET_TOKEN/);
    expect((await api({ httpUrl: c.httpUrl, adminToken: newToken }, 'GET', '/v1/devices')).status).toBe(200);

    const passwd = await fleet(['users', 'passwd', 'victor', ...dd], { input: 'victor password 2\n' });
    expect(passwd.code, passwd.out).toBe(0);
    const short = await fleet(['users', 'passwd', 'victor', '--password-stdin', ...dd], { input: 'short\n' });
    expect(short.code).toBe(2);
    expect(short.out.trim()).toMatch(/^error \[invalid-input\]: request body is invalid: password: a password needs at least 12 characters$/);

    const removed = await fleet(['users', 'remove', 'victor', '--reason', 'left', ...dd]);
    expect(removed.code).toBe(0);
    expect((await api({ httpUrl: c.httpUrl, adminToken: victorToken }, 'GET', '/v1/devices')).status).toBe(401);

    const audit = await fleet(['audit', '--limit', '20', ...dd]);
    expect(audit.code).toBe(0);
    expect(audit.out).toMatch(/admin \(admin\)\s*│ 127\.0\.0\.1 │ users\.removed\s*│ victor\s*│ left/);
    expect(audit.out).toMatch(/alice \(operator\)\s*│ 127\.0\.0\.1 │ session\.created/);
    expect(audit.out).toMatch(/admin \(admin\)\s*│ 127\.0\.0\.1 │ users\.added\s*│ alice\s*│ on call/);
    const mine = JSON.parse((await fleet(['audit', '--user', 'alice', '--json', ...dd])).out) as { entries: { action: string }[] };
    expect(mine.entries.map((e) => e.action)).toEqual(['session.created']);
  });
});
