/**
 * Devices' accounts on a Mosquitto the coordinator manages, as an operator runs it: Debian's Mosquitto
 * with the dynamic-security plugin configured as `fleet broker mosquitto-config` configures it,
 * `fleet coordinator start --broker … --broker-credentials …` and the operator CLI as child
 * processes, devices as real MQTT clients. Provisioning lets a device do exactly what its role allows,
 * a rotation closes the old secret's session and refuses it, a revocation refuses and disconnects,
 * a re-provisioning with another model moves its rollout topic, and a coordinator that was down while
 * the broker's accounts were changed puts them back at its next start.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, FLAGS_TOPIC, rolloutTopic } from '../../protocol/topics.js';
import { hasDynsec } from '../support/mosquitto-dynsec.js';
import { connackCode, sayHello, startCoordinatorProcess, subscribeCode, waitFor, type CoordinatorProcess } from '../hostile/hostile-harness.js';
import { spawnFleet } from '../support/processes.js';

/** `fleet devices provision … --out` and the secrets it wrote. */
async function provision(c: CoordinatorProcess, ids: string[], extra: string[] = []): Promise<Record<string, string>> {
  const out = join(c.dataDir, `secrets-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  const r = await c.cli(['devices', 'provision', ...ids, '--out', out, ...extra]);
  expect(r.code, r.output).toBe(0);
  return JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>;
}

/** Resolves once the client's connection has been closed. */
const closed = (client: MqttClient): Promise<void> => new Promise((resolve) => (client.stream.destroyed ? resolve() : client.stream.once('close', () => resolve())));

/** One dynsec answer. */
interface Answer {
  command: string;
  error?: string;
  data?: unknown;
}

/** Sends dynsec commands as `username` and resolves with the answers. */
async function dynsecAs(url: string, username: string, password: string, commands: object[]): Promise<Answer[]> {
  const admin = await mqtt.connectAsync(url, { username, password, clientId: `test-admin-${Date.now()}`, reconnectPeriod: 0 });
  try {
    await admin.subscribeAsync('$CONTROL/dynamic-security/v1/response', { qos: 1 });
    const answer = new Promise<{ responses: Answer[] }>((resolve) =>
      admin.on('message', (_t, payload) => resolve(JSON.parse(payload.toString('utf8')) as { responses: Answer[] })),
    );
    await admin.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands }), { qos: 1 });
    return (await answer).responses;
  } finally {
    await admin.endAsync(true);
  }
}

/**
 * Dynsec commands as an operator with `mosquitto_ctrl` would send them: from an account of their own
 * with the accounts-admin role (the plugin disconnects every holder of a role it changes before
 * answering, so changing the coordinator's roles from the coordinator's account would never be answered).
 */
async function dynsec(c: CoordinatorProcess, commands: object[]): Promise<Answer[]> {
  const m = c.mosquitto!;
  const operator = { username: 'operator', password: `operator-${m.account.password}` };
  const created = await dynsecAs(m.url, m.account.username, m.account.password, [{ command: 'createClient', ...operator, roles: [{ rolename: 'fleet:accounts-admin' }] }]);
  expect(created.filter((a) => a.error !== undefined && !/already exists/.test(a.error))).toEqual([]);
  return dynsecAs(m.url, operator.username, operator.password, commands);
}

describe.skipIf(!hasDynsec)('broker accounts on Mosquitto (dynamic security)', () => {
  it('provision, rotate, revoke: the broker follows the operator, and downloads use the same secret', { timeout: 180_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker: 'mosquitto' });
    await c.proc.waitForLine(/broker accounts reconciled/);
    const first = await provision(c, ['pi-1'], ['--model', 'rpi4']);
    const pi = await c.device('pi-1', first['pi-1']!);
    await sayHello(c, pi, 'pi-1', 'rpi4');
    // Exactly its role: its topics and its model's bucket, nothing else (refused with SUBACK 0x80).
    const bucket = bucketOf('pi-1');
    expect(await subscribeCode(pi, rolloutTopic('rpi4', bucket))).toBe(1);
    expect(await subscribeCode(pi, deviceTopic('pi-1', 'commands'))).toBe(1);
    expect(await subscribeCode(pi, FLAGS_TOPIC)).toBe(1);
    for (const t of [rolloutTopic('cm4', bucket), rolloutTopic('rpi4', (bucket + 1) % 1024), 'fleet/v1/rollout/+/' + bucket, '#', deviceTopic('pi-2', 'commands'), '$SYS/#', '$CONTROL/dynamic-security/v1/response']) {
      expect(await subscribeCode(pi, t), t).toBe(128);
    }
    // Its secret also authenticates its downloads (HTTP Basic against the coordinator's store).
    const admin = JSON.parse(readFileSync(join(c.dataDir, 'admin.json'), 'utf8')) as { url: string };
    const basic = (secret: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`pi-1:${secret}`).toString('base64')}` });
    const missing = `${admin.url}/artifacts/${'0'.repeat(64)}`;
    expect((await fetch(missing, { headers: basic(first['pi-1']!) })).status).toBe(404);
    expect((await fetch(missing, { headers: basic('wrong') })).status).toBe(401);

    // Rotation: the session of the old secret is closed, the old secret refused, the new one accepted.
    const gone = closed(pi);
    const second = await provision(c, ['pi-1'], ['--rotate']);
    await gone;
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-1', username: 'pi-1', password: first['pi-1']! })).toBe(5);
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-1', username: 'pi-1', password: second['pi-1']! })).toBe(0);
    expect((await fetch(missing, { headers: basic(first['pi-1']!) })).status).toBe(401);
    // The secret of one device never logs in as another client id.
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-x', username: 'pi-1', password: second['pi-1']! })).toBe(5);

    // Re-provisioned as another model: the rollout topic moves with it.
    const third = await provision(c, ['pi-1'], ['--rotate', '--model', 'cm4']);
    const moved = await c.device('pi-1', third['pi-1']!);
    expect(await subscribeCode(moved, rolloutTopic('cm4', bucket))).toBe(1);
    expect(await subscribeCode(moved, rolloutTopic('rpi4', bucket))).toBe(128);

    // Revocation: disconnected at once and refused after.
    const cut = closed(moved);
    const revoked = await c.cli(['devices', 'revoke', 'pi-1', '--reason', 'stolen']);
    expect(revoked.code, revoked.output).toBe(0);
    await cut;
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-1', username: 'pi-1', password: third['pi-1']! })).toBe(5);
    expect((await c.counters())['broker.accounts.push.failed'] ?? 0).toBe(0);
  });

  it('a device provisioned without a model reads its bucket of any model until its first hello, then of that model only', { timeout: 120_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker: 'mosquitto' });
    const s = await provision(c, ['pi-n']);
    const d = await c.device('pi-n', s['pi-n']!);
    const bucket = bucketOf('pi-n');
    expect(await subscribeCode(d, rolloutTopic('cm4', bucket))).toBe(1);
    expect(await subscribeCode(d, `fleet/v1/rollout/+/${bucket}`)).toBe(128);
    expect(await subscribeCode(d, rolloutTopic('cm4', (bucket + 1) % 1024))).toBe(128);
    await sayHello(c, d, 'pi-n', 'rpi4');
    // Mosquitto 2.0.11 disconnects the holders of a changed role only when it read the role from its
    // file (not for one created since it started): a fresh connection sees the narrowed role either way.
    const fresh = async (topic: string): Promise<number> => {
      const x = await mqtt.connectAsync(c.mqttUrl, { clientId: 'pi-n', username: 'pi-n', password: s['pi-n']!, reconnectPeriod: 0 });
      try {
        return await subscribeCode(x, topic);
      } finally {
        await x.endAsync(true);
      }
    };
    await waitFor(async () => (await fresh(rolloutTopic('cm4', bucket))) === 128, 'the role narrowed to rpi4');
    expect(await fresh(rolloutTopic('rpi4', bucket))).toBe(1);
  });

  it('the broker down: provisioning stores nothing, a revocation is made good when the broker is back', { timeout: 180_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker: 'mosquitto' });
    const s = await provision(c, ['pi-d1'], ['--model', 'rpi4']);
    await c.mosquitto!.broker.stop();

    const refused = await c.cli(['devices', 'provision', 'pi-d2', '--model', 'rpi4']);
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/error \[broker-accounts\]: nothing was provisioned: the broker did not take the accounts of pi-d2/);
    expect((await c.api('GET', '/v1/devices/pi-d2')).status).toBe(404);

    const revoke = await c.cli(['devices', 'revoke', 'pi-d1']);
    expect(revoke.code).toBe(2);
    expect(revoke.output).toMatch(/error \[broker-accounts\]: pi-d1 is revoked here \(its downloads are refused\), but the broker did not confirm disabling its account/);
    expect((await c.api<{ hasCredentials: boolean }>('GET', '/v1/devices/pi-d1')).body.hasCredentials).toBe(false);

    const reconciled = (await c.counters())['broker.accounts.reconciled'] ?? 0;
    await c.mosquitto!.broker.restart();
    await waitFor(async () => ((await c.counters())['broker.accounts.reconciled'] ?? 0) > reconciled, 'reconciled when the broker came back', 60_000);
    expect((await c.counters())['broker.accounts.disabled']).toBe(1);
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-d1', username: 'pi-d1', password: s['pi-d1']! })).toBe(5);
  });

  it('accounts changed on the broker while the coordinator was down are put back at its start', { timeout: 180_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker: 'mosquitto' });
    const s = await provision(c, ['pi-r1', 'pi-r2', 'pi-r3'], ['--model', 'rpi4']);
    expect((await c.cli(['devices', 'revoke', 'pi-r2'])).code).toBe(0);
    expect(await c.proc.stop()).toMatchObject({ code: 0 });

    // Meanwhile, on the broker: the revoked device enabled again, a device's account lost, a client
    // given a device's role, and the coordinator's roles and the default access loosened.
    const answers = await dynsec(c, [
      { command: 'enableClient', username: 'pi-r2' },
      { command: 'deleteClient', username: 'pi-r3' },
      { command: 'createClient', username: 'rogue', password: 'rogue-secret', roles: [{ rolename: 'fleet:device:pi-r1' }] },
      { command: 'removeRoleACL', rolename: 'fleet:coordinator', acltype: 'publishClientSend', topic: 'fleet/v1/flags' },
      { command: 'setDefaultACLAccess', acls: [{ acltype: 'subscribe', allow: true }] },
    ]);
    expect(answers.filter((a) => a.error !== undefined)).toEqual([]);
    expect(await connackCode(c.mqttUrl, { clientId: 'pi-r2', username: 'pi-r2', password: s['pi-r2']! })).toBe(0);

    const again = spawnFleet(['coordinator', 'start', '--data-dir', c.dataDir, '--broker', c.mqttUrl, '--broker-credentials', c.mosquitto!.accountFile, '--http-port', '0', '--log-level', 'info']);
    try {
      const line = JSON.parse(await again.waitForLine(/broker accounts reconciled/, 60_000)) as Record<string, unknown>;
      expect(line).toMatchObject({ devices: 3, created: 1, disabled: 1, unknownDisabled: 1, defaultAccessFixed: true });
      await again.waitForLine(/devices had no account on the broker.*rotate them/);
      expect(await connackCode(c.mqttUrl, { clientId: 'pi-r2', username: 'pi-r2', password: s['pi-r2']! })).toBe(5);
      expect(await connackCode(c.mqttUrl, { clientId: 'rogue', username: 'rogue', password: 'rogue-secret' })).toBe(5);
      // The lost account exists again without a secret: the old one is refused until a rotation.
      expect(await connackCode(c.mqttUrl, { clientId: 'pi-r3', username: 'pi-r3', password: s['pi-r3']! })).toBe(5);
      expect(await connackCode(c.mqttUrl, { clientId: 'pi-r1', username: 'pi-r1', password: s['pi-r1']! })).toBe(0);
      // The coordinator's role has its rule back, fixed first and alone: the plugin disconnects the
      // holders of a role it changes (the coordinator too) before answering; it was read back after.
      await again.waitForLine(/disconnected the coordinator while changing its own roles/);
      const [role] = await dynsec(c, [{ command: 'getRole', rolename: 'fleet:coordinator' }]);
      expect((role?.data as { role: { acls: object[] } }).role.acls).toContainEqual(expect.objectContaining({ acltype: 'publishClientSend', topic: 'fleet/v1/flags' }));
      await again.waitForLine(/fleet coordinator \(development\)/, 60_000);
      const rotated = await provision(c, ['pi-r3'], ['--rotate']);
      expect(await connackCode(c.mqttUrl, { clientId: 'pi-r3', username: 'pi-r3', password: rotated['pi-r3']! })).toBe(0);
      // Reconciling again changes nothing.
      expect(await again.stop()).toMatchObject({ code: 0 });
      const third = spawnFleet(['coordinator', 'start', '--data-dir', c.dataDir, '--broker', c.mqttUrl, '--broker-credentials', c.mosquitto!.accountFile, '--http-port', '0', '--log-level', 'info']);
      try {
        const quiet = JSON.parse(await third.waitForLine(/broker accounts reconciled/, 60_000)) as Record<string, unknown>;
        expect(quiet).toMatchObject({ devices: 3, created: 0, disabled: 0, corrected: 0, unknownDisabled: 0, defaultAccessFixed: false, changes: 0 });
      } finally {
        await third.stop();
      }
    } finally {
      await again.stop();
    }
  });

  it('refuses to start against a broker without the plugin, in one line naming the fix', { timeout: 120_000 }, async () => {
    const { Mosquitto } = await import('../support/mosquitto.js');
    const plain = await Mosquitto.start({ users: { coordinator: 'pw-123456' } });
    try {
      const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const dir = mkdtempSync(join(tmpdir(), 'fleet-noplugin-'));
      const file = join(dir, 'account.json');
      writeFileSync(file, JSON.stringify({ username: 'coordinator', password: 'pw-123456', accounts: 'mosquitto-dynsec' }));
      const p = spawnFleet(['coordinator', 'start', '--data-dir', join(dir, 'data'), '--broker', plain.url, '--broker-credentials', file, '--http-port', '0']);
      const exit = await p.exited;
      rmSync(dir, { recursive: true, force: true });
      expect(exit.code).not.toBe(0);
      expect(p.output()).toMatch(/error \[broker-accounts\]: the broker's dynamic-security plugin did not answer .* check that mosquitto\.conf loads it/);
      expect(p.output()).not.toMatch(/\n\s+at /);
    } finally {
      await plain.close();
    }
  });
});
