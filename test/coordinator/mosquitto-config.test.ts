/**
 * `fleet broker mosquitto-config` as the operator runs it (the CLI in a child process): the files it
 * writes, that Mosquitto starts on them and the coordinator's account logs in with the password the
 * plugin's file holds only as a PBKDF2 hash, what it refuses, and that it never overwrites accounts.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { freePort, spawnFleet, spawnProcess } from '../support/processes.js';
import { hasDynsec } from '../support/mosquitto-dynsec.js';
import { dynsecPassword } from '../../coordinator/broker/mosquitto-config.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function outDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-mosq-conf-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function generate(args: string[]): Promise<{ code: number | null; output: string }> {
  const p = spawnFleet(['broker', 'mosquitto-config', ...args]);
  const exit = await p.exited;
  return { code: exit.code, output: p.output() };
}

describe('fleet broker mosquitto-config', () => {
  it('hashes passwords as the plugin does (PBKDF2-SHA512, 12-byte salt)', () => {
    // A vector from `mosquitto_ctrl dynsec init f admin adminpw` (Mosquitto 2.0.11).
    const salt = Buffer.from('1YC/LVW3hCX1KS6W', 'base64');
    expect(dynsecPassword('adminpw', salt, 101).password).toBe('8EqYxPkatBMILvQMdoJpfoQ5s6q2iwqi8aUI9nBGaCJzr3mBm5/31fXSzvnbjIm1zY1ez9FmEeqZxi9d0CsjEw==');
  });

  it.skipIf(!hasDynsec)('writes a configuration Mosquitto starts on, and the coordinator account logs in', { timeout: 60_000 }, async () => {
    const dir = outDir();
    const port = await freePort();
    const r = await generate(['--out', dir, '--port', String(port), '--user', 'root', '--max-packet-bytes', '65536']);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`mosquitto -c ${join(dir, 'mosquitto.conf')}`);
    expect(r.output).toContain(`fleet coordinator start --broker mqtt://127.0.0.1:${port} --broker-credentials ${join(dir, 'coordinator-account.json')}`);
    const conf = readFileSync(join(dir, 'mosquitto.conf'), 'utf8');
    for (const line of ['allow_anonymous false', `listener ${port} 127.0.0.1`, 'persistence true', 'max_queued_messages 200000', 'max_packet_size 65536', `plugin_opt_config_file ${join(dir, 'dynamic-security.json')}`]) {
      expect(conf).toContain(line);
    }
    expect(statSync(join(dir, 'coordinator-account.json')).mode & 0o777).toBe(0o600);
    const account = JSON.parse(readFileSync(join(dir, 'coordinator-account.json'), 'utf8')) as { username: string; password: string; accounts: string };
    expect(account).toMatchObject({ username: 'fleet:coordinator', accounts: 'mosquitto-dynsec' });
    expect(readFileSync(join(dir, 'dynamic-security.json'), 'utf8')).not.toContain(account.password);

    const broker = spawnProcess('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')]);
    cleanups.push(() => broker.stop());
    await broker.waitForLine(/mosquitto version \S+ running/, 15_000);
    const url = `mqtt://127.0.0.1:${port}`;
    const c = await mqtt.connectAsync(url, { username: account.username, password: account.password, clientId: 'gen-test', reconnectPeriod: 0 });
    cleanups.push(() => c.endAsync(true));
    // Its two roles: device traffic and the plugin's control topic.
    expect((await c.subscribeAsync('fleet/v1/devices/+/+', { qos: 1 }))[0]?.qos).toBe(1);
    expect((await c.subscribeAsync('$CONTROL/dynamic-security/v1/response', { qos: 1 }))[0]?.qos).toBe(1);
    // Nobody else: anonymous and wrong passwords are refused.
    await expect(mqtt.connectAsync(url, { clientId: 'anon', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/);
    await expect(mqtt.connectAsync(url, { username: account.username, password: 'wrong', clientId: 'x', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/);

    // Run again: the accounts are kept; without --force the conf too.
    const again = await generate(['--out', dir, '--port', String(port), '--user', 'root']);
    expect(again.code).toBe(2);
    expect(again.output).toMatch(/error \[config\]: .*mosquitto\.conf exists: pass --force/);
    const forced = await generate(['--out', dir, '--port', String(port), '--user', 'root', '--force']);
    expect(forced.code, forced.output).toBe(0);
    expect(forced.output).toContain(`kept ${join(dir, 'dynamic-security.json')}`);
    expect(JSON.parse(readFileSync(join(dir, 'coordinator-account.json'), 'utf8'))).toEqual(account);
  });

  it('refuses plaintext beyond loopback and half a TLS pair, in one line', { timeout: 60_000 }, async () => {
    const dir = outDir();
    const open = await generate(['--out', dir, '--host', '0.0.0.0']);
    expect(open.code).toBe(2);
    expect(open.output).toMatch(/^error \[config\]: devices would send their secrets in plaintext on 0\.0\.0\.0: give --tls-cert and --tls-key/m);
    const half = await generate(['--out', dir, '--tls-cert', 'server.pem']);
    expect(half.output).toMatch(/error \[config\]: give both --tls-cert and --tls-key/);
    expect(open.output + half.output).not.toMatch(/\n\s+at /);
  });

  it('writes TLS listeners: the device port with certificates, a plaintext one on loopback', { timeout: 60_000 }, async () => {
    const dir = outDir();
    const r = await generate(['--out', dir, '--tls-cert', '/etc/fleet/server.pem', '--tls-key', '/etc/fleet/server.key', '--tls-client-ca', '/etc/fleet/device-ca.pem', '--local-port', '1883']);
    expect(r.code, r.output).toBe(0);
    const conf = readFileSync(join(dir, 'mosquitto.conf'), 'utf8');
    expect(conf).toContain('listener 8883 0.0.0.0\ncertfile /etc/fleet/server.pem\nkeyfile /etc/fleet/server.key\ncafile /etc/fleet/device-ca.pem\nrequire_certificate true');
    expect(conf).toContain('listener 1883 127.0.0.1\n');
    expect(r.output).toContain('chown -R mosquitto:');
    expect(r.output).toContain('--broker mqtt://127.0.0.1:1883');
  });
});
