/**
 * Users, sessions, flags and webhooks of coordinators on PostgreSQL (`store`): two coordinators with
 * their own data directories and one database. A user added with `fleet users add` (the CLI as a child
 * process) on one signs in on the other; a session started on one is honoured, and ended, on the other;
 * a flag set on one is what the other's API answers; a webhook added on one is listed by the
 * other; and all of it is still there after both restart.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet } from '../support/processes.js';
import { api, startCoordinator, tempDir } from './helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

const ADMIN_TOKEN = 'shared-admin-token-0123456789abcdef';

describe('admin state on PostgreSQL', () => {
  it('is shared by coordinators on one database and survives their restart', { timeout: 180_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    // Kept to the end of the run: the coordinators hold connections until afterEach stops them.
    const store = await freshPostgresUrl({ keep: true });
    const start = async (name: string): Promise<Coordinator> => {
      const c = await startCoordinator(join(dir, name), { config: { store, adminToken: ADMIN_TOKEN } });
      stops.push(() => c.stop());
      return c;
    };
    let a = await start('a');
    let b = await start('b');

    const added = spawnFleet(['users', 'add', 'alice', '--role', 'operator', '--password-stdin', '--json', '--url', a.httpUrl, '--token', ADMIN_TOKEN], { input: 'alice password 1\n' });
    expect((await added.exited).code, added.output()).toBe(0);
    const { token } = JSON.parse(added.output()) as { token: string };

    // Alice's token and password work on the other coordinator.
    expect((await api(b, 'GET', '/v1/devices', undefined, token)).status).toBe(200);
    const login = await fetch(`${b.httpUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'alice password 1' }) });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    // The session from b is honoured by a, and logging out on a ends it on b.
    expect((await fetch(`${a.httpUrl}/v1/session`, { headers: { cookie } })).status).toBe(200);
    expect((await fetch(`${a.httpUrl}/v1/session`, { method: 'DELETE', headers: { cookie, 'x-csrf-token': csrfToken } })).status).toBe(204);
    expect((await fetch(`${b.httpUrl}/v1/session`, { headers: { cookie } })).status).toBe(401);

    const flag = spawnFleet(['flags', 'set', 'coord.thing', '--on', '--rollout', '25', '--url', a.httpUrl, '--token', ADMIN_TOKEN]);
    expect((await flag.exited).code, flag.output()).toBe(0);
    expect((await api<{ changes: unknown[] }>(b, 'GET', '/v1/flags/coord.thing/history')).body.changes).toHaveLength(1);
    expect((await api(b, 'GET', '/v1/flags/coord.thing')).body).toMatchObject({ enabled: true, rollout: 25, updatedBy: 'admin' });
    const hook = await api<{ webhook: { id: string } }>(a, 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook' });
    expect(hook.status).toBe(201);
    expect((await api<{ webhooks: { id: string }[] }>(b, 'GET', '/v1/webhooks')).body.webhooks.map((w) => w.id)).toEqual([hook.body.webhook.id]);

    // Removing alice on b refuses her token on a at once.
    const removed = spawnFleet(['users', 'remove', 'alice', '--url', b.httpUrl, '--token', ADMIN_TOKEN]);
    expect((await removed.exited).code, removed.output()).toBe(0);
    expect((await api(a, 'GET', '/v1/devices', undefined, token)).status).toBe(401);

    await a.stop();
    await b.stop();
    a = await start('a');
    b = await start('b');
    expect((await api<{ flags: { name: string; rollout: number }[] }>(b, 'GET', '/v1/flags')).body.flags.find((f) => f.name === 'coord.thing')).toMatchObject({ rollout: 25 });
    expect((await api<{ webhooks: { id: string }[] }>(a, 'GET', '/v1/webhooks')).body.webhooks.map((w) => w.id)).toEqual([hook.body.webhook.id]);
    expect((await api<{ users: { name: string }[] }>(b, 'GET', '/v1/users')).body.users.map((u) => u.name)).toEqual(['admin']);
  });
});
