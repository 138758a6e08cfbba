/**
 * The failover test: two coordinator replicas (`fleet coordinator start`, real processes) on one
 * PostgreSQL and one Mosquitto with dynamic security, behind a loopback load balancer; a fleet of real
 * agents (`fleet simulate` against the running coordinators). The leader is killed with SIGKILL in the
 * middle of a wave, and in a second release in the middle of a rollback. The other replica takes over
 * within the bound of docs/replication.md, the rollout finishes (the rollback completes), every device
 * the engine tracked reported to the end (no acknowledged status lost, none timed out), and none is
 * left on the bad release. The set-up is failover-harness.ts, shared with the embedded cluster's test.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasDynsec, startDynsecMosquitto, type DynsecMosquitto } from '../support/mosquitto-dynsec.js';
import { waitFor } from '../support/wait-for.js';
import { FailoverHarness, type DeploymentView } from './failover-harness.js';

const TOKEN = 'failover-test-operator-token-5c1e9a7b';
const DEVICES = 24;

let broker: DynsecMosquitto;
const h = new FailoverHarness({
  name: 'failover',
  token: TOKEN,
  devices: DEVICES,
  idPrefix: 'fo-',
  seed: 7,
  brokerArgs: () => ['--broker', broker.url, '--broker-credentials', broker.accountFile],
  simulatorBrokers: () => broker.url,
});

describe.skipIf(!hasDynsec)('replicated coordinators: failover', () => {
  beforeAll(async () => {
    broker = await startDynsecMosquitto({ maxQueuedMessages: 100_000 });
    await h.start('replica-a', 'replica-b');
  }, 120_000);

  afterAll(async () => {
    await h.close();
    await broker?.close();
  });

  it('finishes a rollout whose leader was killed mid-wave', { timeout: 300_000 }, async () => {
    const report = join(h.dir, 'mid-wave.json');
    const run = h.simulate(h.scenario('failover-mid-wave', { version: '1.1.0', behaviour: { kind: 'healthy' }, expect: 'complete' }), report);
    // The wave is rolling: devices have started reporting, not all have committed.
    const under = (d: DeploymentView): boolean => {
      const c = d.waves[0]?.counts ?? {};
      return d.phase === 'rolling' && (c['inProgress'] ?? 0) > 0 && (c['committed'] ?? 0) < (c['tracked'] ?? 0);
    };
    const { killed, next, takeoverMs, at } = await h.killLeaderWhen('1.1.0', under, 'the wave under way');
    console.log(`mid-wave: killed ${killed.name} (${JSON.stringify(at.waves[0]?.counts)}); another replica led after ${takeoverMs} ms`);
    const r = await h.finished(run, report, 240_000);
    expect(r.releases.map((x) => [x.version, x.outcome, x.ok])).toEqual([['1.1.0', 'completed', true]]);
    expect(r.releases[0]!.reach).toMatchObject({ onVersion: DEVICES });
    const d = (await h.deploymentOf(next.url, '1.1.0'))!;
    expect(d.phase).toBe('completed');
    h.expectEveryStatusSeen(d);
    // The killed replica returns as a follower.
    await h.startReplica(killed.name);
  });

  it('completes a rollback whose leader was killed mid-rollback', { timeout: 300_000 }, async () => {
    const report = join(h.dir, 'mid-rollback.json');
    // A release every device takes; the operator rolls it back half way.
    const run = h.simulate(h.scenario('failover-mid-rollback', { version: '1.2.0', behaviour: { kind: 'healthy' }, expect: 'complete' }, { soak: '5m' }), report);
    // Half the fleet has committed the release: the operator rolls it back.
    const rolling = await waitFor(async () => {
      const l = await h.leader();
      const d = l && (await h.deploymentOf(l.url, '1.2.0').catch(() => undefined));
      return d && d.phase === 'rolling' && (d.waves[0]?.counts['committed'] ?? 0) >= DEVICES / 2 ? d : undefined;
    }, 'half the fleet on 1.2.0', 180_000, 50);
    const res = await fetch(`${h.proxy.url}/v1/deployments/${rolling.id}/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'rollback', reason: 'failover test' }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    const { killed, next, takeoverMs, at } = await h.killLeaderWhen('1.2.0', (d) => d.phase === 'rolling-back' && (d.rollback?.confirmed ?? 0) < (d.rollback?.exposed ?? 0), 'the rollback under way');
    console.log(`mid-rollback: killed ${killed.name} (${JSON.stringify(at.rollback)}); another replica led after ${takeoverMs} ms`);
    await run.exited;
    const d = (await h.deploymentOf(next.url, '1.2.0'))!;
    expect(d.id).toBe(rolling.id);
    // Every exposed device confirmed its old version: none left on the release, none unreachable (the
    // simulated fleet of each run starts on the scenario's base version).
    expect(await h.expectRolledBack(next.url, d, '1.2.0')).toHaveLength(DEVICES);
  });
});
