/**
 * A throwaway PostgreSQL 15 server for tests: its own cluster in a temporary directory, on a free
 * loopback port, trust authentication for the `postgres` user over 127.0.0.1. initdb refuses to run
 * as root, so when the tests run as root the server runs as the `postgres` system user.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './processes.js';

const BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin'].find((d) => existsSync(join(d, 'initdb')));

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  dir: string;
  /** Stops it (fast shutdown); `immediate` is a crash. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
}

function asPostgres(cmd: string, args: string[]): void {
  const root = process.getuid?.() === 0;
  execFileSync(root ? 'runuser' : cmd, root ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: 'pipe' });
}

async function waitReady(url: string, deadline: number): Promise<void> {
  for (;;) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startPostgresServer(): Promise<PostgresServer> {
  if (!BIN) throw new Error('PostgreSQL server binaries not found: install the `postgresql` Debian package (.ci/apt-packages.txt)');
  const dir = mkdtempSync(join(tmpdir(), 'fleet-pg-'));
  if (process.getuid?.() === 0) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const data = join(dir, 'data');
  asPostgres(join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const start = async (): Promise<void> => {
    // fsync off: a test cluster is thrown away, and fsync would dominate on a busy disk.
    asPostgres(join(BIN, 'pg_ctl'), [
      '-D', data, '-l', join(dir, 'log'), '-w', '-t', '60',
      '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400`,
      'start',
    ]);
    await waitReady(url, Date.now() + 30_000);
  };
  const stop = (mode: 'fast' | 'immediate' = 'fast'): Promise<void> => {
    try {
      asPostgres(join(BIN, 'pg_ctl'), ['-D', data, '-m', mode, '-w', 'stop']);
    } catch {
      // already stopped
    }
    return Promise.resolve();
  };
  await start();
  return {
    url,
    port,
    dir,
    stop,
    start,
    destroy: async () => {
      await stop('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
