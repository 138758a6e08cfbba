/**
 * Coordinator replicas as real processes: two `fleet coordinator start` on one PostgreSQL and one
 * Mosquitto with dynamic security. One leads (GET /v1/cluster says so on both); the follower refuses
 * deployment changes with 503 naming the leader; kill -9 of the leader hands leadership to the other
 * within the bound docs/replication.md states for a killed leader (retry period plus a round trip;
 * the figure is printed, the wait bounded generously), and the killed one comes back as a follower.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminApi } from '../support/admin-api.js';
import { hasDynsec, startDynsecMosquitto, type DynsecMosquitto } from '../support/mosquitto-dynsec.js';
import { freshPostgresUrl } from '../support/postgres.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';

const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

interface ClusterView {
  replicated: boolean;
  replicaId: string;
  role: 'leader' | 'follower';
  term: number | null;
  leader: { epoch: number; leaderId: string; adminUrl: string } | null;
}

const TOKEN = 'replica-test-token-7f3a9c2e5b8d1f4a';

function adminUrlOf(dataDir: string): string {
  return (JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string }).url;
}

function start(dir: string, name: string, store: string, broker: DynsecMosquitto, artifacts: string): RunningProcess {
  const p = spawnFleet(
    ['coordinator', 'start', '--data-dir', join(dir, name), '--store', store, '--broker', broker.url, '--broker-credentials', broker.accountFile, '--http-port', '0', '--artifacts-dir', artifacts, '--replica-id', name, '--log-format', 'json'],
    { env: { FLEET_ADMIN_TOKEN: TOKEN, FLEET_LEADER_RETRY_MS: '200' } },
  );
  stops.push(() => p.stop('SIGKILL'));
  return p;
}

describe.skipIf(!hasDynsec)('replicated coordinators', () => {
  it('elect one leader, refuse changes on the follower, and fail over on kill -9', { timeout: 120_000 }, async () => {
    const broker = await startDynsecMosquitto();
    stops.push(() => broker.close());
    const store = await freshPostgresUrl({ keep: true });
    const dir = mkdtempSync(join(tmpdir(), 'fleet-replicas-'));
    stops.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const artifacts = join(dir, 'shared-artifacts');

    let a = start(dir, 'replica-a', store, broker, artifacts);
    await a.waitForLine(/elected leader/, 60_000);
    await a.waitForLine(/coordinator started/, 60_000);
    const b = start(dir, 'replica-b', store, broker, artifacts);
    await b.waitForLine(/coordinator started/, 60_000);
    const apiA = adminApi(join(dir, 'replica-a'));
    const apiB = adminApi(join(dir, 'replica-b'));

    const viewA = await apiA<ClusterView>('GET', '/v1/cluster');
    const viewB = await waitFor(async () => {
      const v = await apiB<ClusterView>('GET', '/v1/cluster');
      return v.leader ? v : undefined;
    }, 'b sees a leader');
    expect(viewA).toMatchObject({ replicated: true, replicaId: 'replica-a', role: 'leader', term: 1 });
    expect(viewA.leader?.adminUrl).toBe(adminUrlOf(join(dir, 'replica-a')));
    expect(viewB).toMatchObject({ replicated: true, replicaId: 'replica-b', role: 'follower', term: null, leader: { epoch: 1, leaderId: 'replica-a' } });

    // A deployment change on the follower: 503 naming the leader, before anything is validated or written.
    const leaderUrl = viewB.leader!.adminUrl;
    const refused = await fetch(`${adminUrlOf(join(dir, 'replica-b'))}/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ firmwareVersion: '9.9.9', target: { hardwareModels: ['rpi4'] }, waves: [{ percent: 100, soakMs: 0 }] }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('x-fleet-leader')).toBe(leaderUrl);
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'not-leader', message: expect.stringContaining(leaderUrl) as unknown });

    const killedAt = Date.now();
    await a.stop('SIGKILL');
    const took = await waitFor(async () => {
      const v = await apiB<ClusterView>('GET', '/v1/cluster');
      return v.role === 'leader' ? v : undefined;
    }, 'b takes over', 30_000, 50);
    console.log(`takeover after kill -9 of the leader process: ${Date.now() - killedAt} ms`);
    expect(took).toMatchObject({ role: 'leader', term: 2, leader: { epoch: 2, leaderId: 'replica-b' } });
    await b.waitForLine(/elected leader/, 10_000);

    // The killed replica comes back on its data directory as a follower.
    a = start(dir, 'replica-a', store, broker, artifacts);
    await a.waitForLine(/coordinator started/, 60_000);
    const back = await adminApi(join(dir, 'replica-a'))<ClusterView>('GET', '/v1/cluster');
    expect(back).toMatchObject({ role: 'follower', leader: { epoch: 2, leaderId: 'replica-b' } });
  });
});
