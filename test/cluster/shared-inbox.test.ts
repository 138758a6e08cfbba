/**
 * The shared status inbox and device changes between replicas, on a real PostgreSQL: a status stored
 * by any replica reaches the leader's engine at once through NOTIFY (the poll is minutes away), a row
 * whose transaction commits after a later one is still fed (the poll's look-back), malformed rows are
 * counted and skipped, and a device's change — but not a mere last-seen update — is announced.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { systemClock } from '@fleet/protocol/clock';
import type { StatusMessage } from '@fleet/protocol/messages';
import { InboxFollower } from '../../coordinator/cluster/inbox-follower.js';
import { CREDENTIALS_CHANNEL, DEVICE_CHANNEL, INBOX_CHANNEL } from '../../coordinator/cluster/leadership-migrations.js';
import { PgListener } from '../../coordinator/cluster/pg-listener.js';
import { openPostgresStore } from '../../coordinator/store/open-store.js';
import type { Sql, SqlQueries } from '../../coordinator/store/sql.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { waitFor } from '../support/wait-for.js';

const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function status(deviceId: string, seq: number): StatusMessage {
  return { v: 1, kind: 'status', deviceId, deploymentId: 'dep-1', state: 'downloading', fromVersion: '1.0.0', toVersion: '2.0.0', seq, at: 1_000 + seq };
}

function insert(q: SqlQueries, s: StatusMessage | { deviceId: string; seq: number; raw: string }): Promise<unknown> {
  const json = 'raw' in s ? s.raw : JSON.stringify(s);
  return q.run('INSERT INTO status_inbox (device_id, deployment_id, seq, received_at, message_json) VALUES (?, ?, ?, ?, ?)', [s.deviceId, 'dep-1', s.seq, 1, json]);
}

async function setup(pollMs: number): Promise<{ url: string; sql: Sql; fed: StatusMessage[]; follower: InboxFollower; notes: [string, string][] }> {
  const url = await freshPostgresUrl();
  const sql = await openPostgresStore(url);
  cleanups.push(() => sql.close());
  const fed: StatusMessage[] = [];
  const notes: [string, string][] = [];
  const follower = new InboxFollower({ sql, feed: (s) => fed.push(s), logger, timers: systemClock, pollMs });
  let connected!: () => void;
  const listening = new Promise<void>((resolve) => (connected = resolve));
  const listener = new PgListener({
    url,
    channels: [INBOX_CHANNEL, DEVICE_CHANNEL, CREDENTIALS_CHANNEL],
    logger,
    timers: systemClock,
    onNotification: (channel, payload) => {
      notes.push([channel, payload]);
      if (channel === INBOX_CHANNEL) follower.wake();
    },
    onConnected: () => connected(),
  });
  cleanups.push(() => listener.stop(), () => follower.stop());
  await listener.start();
  await listening;
  return { url, sql, fed, follower, notes };
}

describe('shared status inbox on PostgreSQL', () => {
  it('replays what was stored before the term, then feeds new statuses at once on NOTIFY', async () => {
    const { sql, fed, follower } = await setup(10 * 60_000);
    await insert(sql, status('d-1', 1));
    await insert(sql, { deviceId: 'd-bad', seq: 1, raw: '{"not":"a status"}' });
    await follower.start();
    expect(fed.map((s) => [s.deviceId, s.seq])).toEqual([['d-1', 1]]);
    expect(follower.counts.malformed).toBe(1);
    // Stored by another replica: only the notification can bring it within the test's time.
    await insert(sql, status('d-2', 1));
    await sql.transaction(async (tx) => {
      await insert(tx, status('d-3', 1));
      await insert(tx, status('d-3', 2));
    });
    await waitFor(() => fed.length === 4, 'statuses fed on NOTIFY');
    expect(fed.map((s) => `${s.deviceId}#${s.seq}`)).toEqual(['d-1#1', 'd-2#1', 'd-3#1', 'd-3#2']);
  });

  it('feeds a status whose transaction committed after a later id was read', async () => {
    const { url, sql, fed, follower } = await setup(200);
    await follower.start();
    // A second pool: the slow transaction takes its id first and commits last.
    const other = await openPostgresStore(url);
    cleanups.push(() => other.close());
    let commitSlow!: () => void;
    const slowMayCommit = new Promise<void>((resolve) => (commitSlow = resolve));
    let inserted!: () => void;
    const slowInserted = new Promise<void>((resolve) => (inserted = resolve));
    const slow = other.transaction(async (tx) => {
      await insert(tx, status('slow', 1));
      inserted();
      await slowMayCommit;
    });
    await slowInserted;
    await insert(sql, status('fast', 1));
    await waitFor(() => fed.some((s) => s.deviceId === 'fast'), 'the later id fed');
    commitSlow();
    await slow;
    await waitFor(() => fed.some((s) => s.deviceId === 'slow'), 'the earlier id, committed later, fed');
    const ids = await sql.all<{ id: number; device_id: string }>('SELECT id, device_id FROM status_inbox ORDER BY id');
    expect(ids.map((r) => r.device_id)).toEqual(['slow', 'fast']);
    expect(fed.map((s) => s.deviceId)).toEqual(['fast', 'slow']);
  });

  it('announces a device change to every replica, but not a last-seen update; credentials on their own channel', async () => {
    const { sql, notes } = await setup(10 * 60_000);
    const on = (channel: string): string[] => notes.filter(([c]) => c === channel).map(([, id]) => id);
    await sql.run("INSERT INTO devices (device_id, bucket, hardware_model) VALUES ('d-1', 1, 'rpi4'), ('d-2', 2, 'rpi4')");
    await waitFor(() => on(DEVICE_CHANNEL).length === 2, 'inserts announced');
    await sql.run("UPDATE devices SET last_seen = 5 WHERE device_id = 'd-1'");
    await sql.run("UPDATE devices SET online = 1 WHERE device_id = 'd-2'");
    await sql.run("INSERT INTO device_credentials (device_id, secret_hash, created_at) VALUES ('d-1', 'x', 1)");
    await sql.run("UPDATE device_credentials SET revoked = 1 WHERE device_id = 'd-1'");
    await sql.run("DELETE FROM device_credentials WHERE device_id = 'd-1'");
    await sql.run("UPDATE devices SET online = 1 WHERE device_id = 'd-1'");
    // Notifications arrive in commit order: d-1's last-seen update, had it been sent, would come first.
    await waitFor(() => on(DEVICE_CHANNEL).length === 4 && on(CREDENTIALS_CHANNEL).length === 3, 'changes announced');
    expect(on(DEVICE_CHANNEL)).toEqual(['d-1', 'd-2', 'd-2', 'd-1']);
    // A credential change is not a registry change: replicas forget the device's verified secrets.
    expect(on(CREDENTIALS_CHANNEL)).toEqual(['d-1', 'd-1', 'd-1']);
  });
});
