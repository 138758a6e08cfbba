/**
 * Leader election and fencing against a real PostgreSQL: the lock holder is a real process, killed
 * with SIGKILL (the server releases its lock when the socket closes) or frozen with SIGSTOP (its lease
 * runs out and a follower ends its session); a fenced write is refused inside its transaction.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { systemClock } from '@fleet/protocol/clock';
import { currentLeader, FencedError, LeaderElection, leadershipGuard } from '../../coordinator/cluster/leader-election.js';
import { openPostgresStore } from '../../coordinator/store/open-store.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { repoRoot, spawnProcess, tsLoader, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function store(): Promise<{ url: string; sql: Sql }> {
  const url = await freshPostgresUrl();
  const sql = await openPostgresStore(url);
  cleanups.push(() => sql.close());
  return { url, sql };
}

function holder(url: string, id: string, leaseMs = 10_000): RunningProcess {
  const p = spawnProcess(process.execPath, ['--import', tsLoader, join(repoRoot, 'test/cluster/election-child.ts'), url, id, String(leaseMs)]);
  cleanups.push(() => p.stop('SIGKILL'));
  return p;
}

interface Contender {
  election: LeaderElection;
  elected: number[];
  demoted: string[];
}

function contender(url: string, id: string, options: { leaseMs?: number } = {}): Contender {
  const c: Contender = { elected: [], demoted: [], election: undefined as unknown as LeaderElection };
  c.election = new LeaderElection({
    url,
    replicaId: id,
    adminUrl: () => `http://127.0.0.1:1/${id}`,
    onElected: (term) => {
      c.elected.push(term);
      return Promise.resolve();
    },
    onDemoted: (_term, reason) => c.demoted.push(reason),
    logger: pino({ level: 'silent' }),
    timers: systemClock,
    retryMs: 100,
    ...options,
  });
  c.election.start();
  cleanups.push(() => c.election.stop());
  return c;
}

describe('leader election on PostgreSQL', () => {
  it('one leader; kill -9 of the holder hands the lock to a follower with the next term', async () => {
    const { url, sql } = await store();
    const a = holder(url, 'replica-a');
    await a.waitForLine(/^elected 1$/, 20_000);
    const b = contender(url, 'replica-b');
    // b has tried and lost (the row still names a): a follower with the lock held elsewhere.
    await waitFor(async () => (await sql.get<{ n: number }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'fleet-leader-election replica-b'"))?.n, 'b connected');
    expect(b.election.role).toBe('follower');
    expect(await currentLeader(sql)).toEqual({ epoch: 1, leaderId: 'replica-a', adminUrl: 'http://127.0.0.1:1/replica-a' });

    const killedAt = Date.now();
    await a.stop('SIGKILL');
    await waitFor(() => b.elected.length > 0, 'b elected', 20_000);
    const takeoverMs = Date.now() - killedAt;
    expect(b.elected).toEqual([2]);
    expect(b.election.role).toBe('leader');
    expect(await currentLeader(sql)).toMatchObject({ epoch: 2, leaderId: 'replica-b' });
    // The bound stated in docs/replication.md for a killed leader is retryMs plus a round trip; the
    // figure is logged, not asserted (a busy machine may be slower).
    console.log(`takeover after kill -9: ${takeoverMs} ms`);
  });

  it('a hung leader (SIGSTOP) loses its session once its lease runs out, and steps down when it wakes', async () => {
    const { url } = await store();
    const a = holder(url, 'replica-a', 1500);
    await a.waitForLine(/^elected 1$/, 20_000);
    const b = contender(url, 'replica-b', { leaseMs: 1500 });
    a.child.kill('SIGSTOP');
    cleanups.push(() => Promise.resolve(a.child.kill('SIGCONT')));
    await waitFor(() => b.elected.length > 0, 'b elected after the lease ran out', 30_000);
    expect(b.elected).toEqual([2]);
    a.child.kill('SIGCONT');
    await a.waitForLine(/^demoted 1 /, 20_000);
    expect(b.election.role).toBe('leader');
  });

  it('fences a stale term inside the write transaction and lets the current one through', async () => {
    const { url, sql } = await store();
    const a = contender(url, 'replica-a');
    await waitFor(() => a.elected.length > 0, 'a elected');
    const term = a.elected[0]!;
    await sql.run('CREATE TABLE engine_writes (term BIGINT)');
    const fenced: FencedError[] = [];
    const write = (t: number): Promise<void> =>
      sql.transaction(async (tx) => {
        await leadershipGuard(t, (e) => fenced.push(e))(tx);
        await tx.run('INSERT INTO engine_writes (term) VALUES (?)', [t]);
      });
    await write(term);
    // Another replica takes over: a's session ends, b increments the epoch.
    await a.election.stop();
    const b = contender(url, 'replica-b');
    await waitFor(() => b.elected.length > 0, 'b elected');
    await expect(write(term)).rejects.toBeInstanceOf(FencedError);
    expect(fenced.map((e) => [e.term, e.current])).toEqual([[term, b.elected[0]]]);
    await write(b.elected[0]!);
    expect(await sql.all('SELECT term FROM engine_writes ORDER BY term')).toEqual([{ term }, { term: b.elected[0] }]);
  });

  it('a leader whose connection is terminated steps down and contends again', async () => {
    const { url, sql } = await store();
    const a = contender(url, 'replica-a');
    await waitFor(() => a.elected.length > 0, 'a elected');
    await sql.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fleet-leader-election replica-a'");
    await waitFor(() => a.demoted.length > 0, 'a demoted');
    // Nobody else contends: it wins again, with a new term.
    await waitFor(() => a.elected.length > 1, 'a re-elected');
    expect(a.elected).toEqual([1, 2]);
  });
});
