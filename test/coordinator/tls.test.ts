/** MQTT over TLS on the embedded broker when a certificate and key are configured. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { deviceTopic } from '../../protocol/topics.js';
import { startCoordinator, tempDir, uniqueId, waitFor } from './helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

describe('TLS', () => {
  it('serves mqtts:// with the configured certificate and still authenticates devices', async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    // A throwaway self-signed certificate for 127.0.0.1 (local openssl, no network).
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const c: Coordinator = await startCoordinator(join(dir, 'data'), { config: { mqtt: { port: 0, host: '127.0.0.1', tlsCert: cert, tlsKey: key } } });
    stops.push(() => c.stop());
    expect(c.mqttUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const id = uniqueId('tls');
    const [cred] = await c.provisionDevices([id]);
    const client = await mqtt.connectAsync(c.mqttUrl, { clientId: id, username: id, password: cred!.secret, ca: readFileSync(cert), reconnectPeriod: 0 });
    stops.push(() => client.endAsync(true));
    await client.publishAsync(deviceTopic(id, 'presence'), JSON.stringify({ v: 1, kind: 'presence', deviceId: id, state: 'online' }), { qos: 1 });
    await waitFor(() => c.counter('ingest.presence') === 1, 'presence over TLS');
    await expect(mqtt.connectAsync(c.mqttUrl, { clientId: id, username: id, password: 'wrong', ca: readFileSync(cert), reconnectPeriod: 0 })).rejects.toThrow();
    // A plain-TCP client gets nowhere.
    const plain = mqtt.connect(c.mqttUrl.replace('mqtts', 'mqtt'), { clientId: uniqueId('plain'), reconnectPeriod: 0, connectTimeout: 2000 });
    stops.push(() => plain.endAsync(true));
    const outcome = await new Promise<string>((resolve) => {
      plain.once('connect', () => resolve('connected'));
      plain.once('error', () => resolve('refused'));
      plain.once('close', () => resolve('refused'));
    });
    expect(outcome).toBe('refused');
  });
});
