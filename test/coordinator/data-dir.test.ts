/**
 * One data directory, one coordinator, as real `fleet coordinator start` processes: a second one is
 * refused with the first one's pid and URL and changes nothing; a SIGKILLed one leaves no stale lock,
 * and the next start knows it ended uncleanly. Counter totals survive the kill. `--http-port 0` is a
 * free port every time; `auto` is the previous run's.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { tempDir, waitFor } from './helpers.js';

const running: RunningProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop('SIGKILL');
  for (const c of cleanups.splice(0)) await c();
});

/** Starts `fleet coordinator start` and resolves once it is up, with its admin URL. */
async function start(dataDir: string, ...args: string[]): Promise<{ p: RunningProcess; httpUrl: string }> {
  const p = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, '--log-level', 'warn', ...args]);
  running.push(p);
  const line = await p.waitForLine(/^fleet coordinator .* admin API (http:\/\/\S+),/);
  return { p, httpUrl: /admin API (http:\/\/\S+),/.exec(line)![1]! };
}

const adminFile = (dataDir: string): { url: string; token: string } => JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string };

async function metrics(dataDir: string): Promise<{ counters: Record<string, number>; totals: Record<string, number> }> {
  const { url, token } = adminFile(dataDir);
  const res = await fetch(`${url}/v1/metrics`, { headers: { authorization: `Bearer ${token}` } });
  return (await res.json()) as { counters: Record<string, number>; totals: Record<string, number> };
}

/** What fleet.db has stored for a counter (read-only; the coordinator writes it). */
function storedTotal(dataDir: string, name: string): number {
  const db = new Database(join(dataDir, 'fleet.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT total FROM counter_totals WHERE name = ?').get(name) as { total: number } | undefined)?.total ?? 0;
  } finally {
    db.close();
  }
}

describe('data directory', () => {
  it('refuses a second coordinator, survives a SIGKILL without a stale lock, and keeps counter totals', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dir = join(t.dir, 'data');
    const first = await start(dir, '--http-port', '0', '--mqtt-port', '0');
    const before = readFileSync(join(dir, 'admin.json'), 'utf8');

    const second = spawnFleet(['coordinator', 'start', '--data-dir', dir, '--http-port', '0', '--mqtt-port', '0']);
    running.push(second);
    const exit = await second.exited;
    expect(exit.code).toBe(2);
    const refusal = second.output();
    expect(refusal).toContain(`error [data-dir-in-use]: data directory ${dir} is in use by coordinator pid ${first.p.pid}`);
    expect(refusal).toContain(`admin API ${first.httpUrl}`);
    expect(refusal).not.toMatch(/\n\s+at /); // one clear line, no stack trace
    expect(readFileSync(join(dir, 'admin.json'), 'utf8')).toBe(before);

    // Three downloads with bad credentials, stored as totals within the flush interval; then SIGKILL.
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${first.httpUrl}/artifacts/${'a'.repeat(64)}`, { headers: { authorization: `Basic ${Buffer.from('dev-x:wrong').toString('base64')}` } });
      expect(res.status).toBe(401);
    }
    await waitFor(() => storedTotal(dir, 'artifacts.auth.refused') === 3, 'the counter totals stored', 20_000);
    await first.p.stop('SIGKILL');

    const third = await start(dir, '--http-port', '0', '--mqtt-port', '0');
    const m = await metrics(dir);
    expect(m.counters['artifacts.auth.refused']).toBeUndefined();
    expect(m.counters['coordinator.unclean-stops']).toBe(1);
    expect(m.totals).toMatchObject({ 'artifacts.auth.refused': 3, 'coordinator.unclean-stops': 1, 'coordinator.starts': 2 });

    const cli = spawnFleet(['coordinator', 'metrics', '--data-dir', dir]);
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toMatch(/artifacts\.auth\.refused\s*│\s*0\s*│\s*3/);
    expect(cli.output()).toContain('1 earlier run(s) ended without a clean stop');

    expect((await third.p.stop('SIGTERM')).code).toBe(0);
    const again = await start(dir, '--http-port', '0', '--mqtt-port', '0');
    expect((await metrics(dir)).counters['coordinator.unclean-stops']).toBeUndefined();
    await again.p.stop('SIGTERM');
  });

  it('--http-port 0 is a free port at every start, even when the saved one is taken; auto reuses it', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dir = join(t.dir, 'data');
    const a = await start(dir, '--http-port', '0', '--mqtt-port', '0');
    await a.p.stop('SIGTERM');
    const saved = Number(new URL(a.httpUrl).port);
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(saved, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

    const b = await start(dir, '--http-port', '0', '--mqtt-port', '0');
    const bPort = Number(new URL(b.httpUrl).port);
    expect(bPort).not.toBe(saved);
    await b.p.stop('SIGTERM');

    const c = await start(dir, '--http-port', 'auto', '--mqtt-port', 'auto');
    expect(Number(new URL(c.httpUrl).port)).toBe(bPort);
    await c.p.stop('SIGTERM');
  });
});
