/**
 * A production coordinator as an operator runs it (`fleet coordinator start` in its own process) with
 * HTTPS for the admin API and artifacts, MQTT over TLS and device client certificates (docs/tls.md):
 * the operator CLI works over HTTPS trusting a private CA, devices without the right certificate are
 * turned away, and a real agent with its certificate installs a release downloaded over HTTPS.
 */
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { writeKeyPair } from '../../firmware/keys.js';
import { parseAgentConfig } from '../../agent/config.js';
import { FileSlotBackend } from '../../agent/slots/slot-backend-file.js';
import { SimulatedDevice } from '../../agent/simulated-device.js';
import { freePort, spawnFleet, type RunningProcess } from '../support/processes.js';
import { silentLogger, tempDir, uniqueId, waitFor } from '../coordinator/helpers.js';
import { makePki } from './pki.js';

/** GET with a private CA (node:https; fetch has no per-request CA). */
function getJson(url: string, token: string, ca: Buffer): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }));
      })
      .on('error', reject);
  });
}

async function expectExit0(p: RunningProcess): Promise<void> {
  const exit = await p.exited;
  expect(exit.code, p.output()).toBe(0);
}

describe('production over TLS', () => {
  it('serves the admin API, artifacts and devices over TLS; only a device with its own certificate gets in', { timeout: 180_000 }, async () => {
    const { dir, cleanup } = tempDir('fleet-prod-tls-');
    onTestFinished(cleanup);
    mkdirSync(join(dir, 'pki'));
    const pki = makePki(join(dir, 'pki'));
    const serverCa = readFileSync(pki.serverCa);
    const release = await writeKeyPair(join(dir, 'release'), 'release');
    const token = randomBytes(32).toString('base64');
    const mqttPort = await freePort();
    const httpPort = await freePort();
    const coordinator = spawnFleet(
      ['coordinator', 'start', '--data-dir', join(dir, 'data'), '--mqtt-port', String(mqttPort), '--http-port', String(httpPort),
        '--mqtt-tls-cert', pki.serverCert, '--mqtt-tls-key', pki.serverKey, '--mqtt-client-ca', pki.deviceCa,
        '--http-tls-cert', pki.serverCert, '--http-tls-key', pki.serverKey, '--signing-key', release.privatePath, '--log-level', 'warn'],
      { env: { APP_ENV: 'production', FLEET_ADMIN_TOKEN: token } },
    );
    onTestFinished(async () => {
      expect((await coordinator.stop()).code, coordinator.output()).toBe(0);
    });
    const banner = await coordinator.waitForLine(/^fleet coordinator \(production\)/, 60_000);
    expect(banner).toContain(`MQTT mqtts://127.0.0.1:${mqttPort}`);
    expect(banner).toContain(`admin API https://127.0.0.1:${httpPort}`);
    const base = `https://127.0.0.1:${httpPort}`;

    // The operator CLI trusts the private CA through Node's NODE_EXTRA_CA_CERTS.
    const cli = (...args: string[]) => spawnFleet([...args, '--url', base, '--token', token], { env: { NODE_EXTRA_CA_CERTS: pki.serverCa } });
    const id = uniqueId('mtls');
    const secrets = join(dir, 'secrets.json');
    await expectExit0(cli('devices', 'provision', id, '--model', 'rpi4', '--out', secrets));
    const secret = (JSON.parse(readFileSync(secrets, 'utf8')) as Record<string, string>)[id]!;
    const image = join(dir, 'image.bin');
    writeFileSync(image, randomBytes(64 * 1024));
    await expectExit0(cli('firmware', 'upload', image, '--version', '1.1.0', '--hardware', 'rpi4'));

    // Without the CA, or in plaintext, nothing answers.
    await expect(fetch(`${base}/v1/health`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${httpPort}/v1/health`)).rejects.toThrow();
    const firmware = await getJson(`${base}/v1/firmware/1.1.0`, token, serverCa);
    expect(firmware.status).toBe(200);
    expect((firmware.body as { url: string }).url).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${httpPort}/artifacts/[0-9a-f]{64}$`));

    // Devices: the secret alone, another device's certificate, or a certificate from the wrong CA get nowhere.
    const mqttUrl = `mqtts://127.0.0.1:${mqttPort}`;
    const login = { ca: serverCa, clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 10_000 };
    const other = pki.deviceCert(uniqueId('other'));
    const forged = pki.deviceCert(id, 'server');
    const own = pki.deviceCert(id);
    // No retries: a TLS 1.3 server refuses a client certificate after the client's handshake ends, by closing.
    const connect = (extra: Partial<mqtt.IClientOptions>) => mqtt.connectAsync(mqttUrl, { ...login, ...extra }, false);
    const withCert = (c: { cert: string; key: string }) => ({ cert: readFileSync(c.cert), key: readFileSync(c.key) });
    await expect(connect({})).rejects.toThrow();
    await expect(connect(withCert(other))).rejects.toThrow(/[Nn]ot authorized/);
    await expect(connect(withCert(forged))).rejects.toThrow();
    await expect(connect({ ...withCert(own), password: 'wrong' })).rejects.toThrow(/[Nn]ot authorized|[Bb]ad user/);
    const metrics = await getJson(`${base}/v1/metrics`, token, serverCa);
    const counters = (metrics.body as { counters: Record<string, number> }).counters;
    expect(counters['mqtt.tls.refused']).toBeGreaterThanOrEqual(2);
    expect(counters['mqtt.auth.refused']).toBeGreaterThanOrEqual(2);

    // A real agent with its own certificate, trusting the private CA for MQTT and for downloads.
    const trust = join(dir, 'trust');
    mkdirSync(trust);
    copyFileSync(release.publicPath, join(trust, 'release.pub'));
    const config = parseAgentConfig({
      deviceId: id,
      hardwareModel: 'rpi4',
      firmwareVersion: '1.0.0',
      broker: { url: mqttUrl, username: id, password: secret, caFile: pki.serverCa, certFile: own.cert, keyFile: own.key, reconnectMin: 50, reconnectMax: 500 },
      trustStoreDir: trust,
      dataDir: join(dir, 'device', 'data'),
      slots: { kind: 'file', dir: join(dir, 'device', 'slots') },
      download: { caFile: pki.serverCa, retryBase: 50, maxAttempts: 3 },
      health: { brokerDeadline: 10_000, trialWindow: 30_000 },
    });
    const device = new SimulatedDevice({ config, slots: await FileSlotBackend.create({ dir: join(dir, 'device', 'slots') }), logger: silentLogger });
    onTestFinished(() => device.stop());
    await device.start();
    await waitFor(() => device.agent?.connected === true, 'the agent connected with its certificate', 30_000);
    await expectExit0(cli('deploy', 'create', '--firmware', '1.1.0', '--waves', '100', '--soak', '1s', '--min-devices', '1'));
    await waitFor(
      async () => ((await getJson(`${base}/v1/devices/${id}`, token, serverCa)).body as { firmwareVersion?: string }).firmwareVersion === '1.1.0',
      'the device to run 1.1.0, downloaded over HTTPS',
      90_000,
      250,
    );
  });
});
