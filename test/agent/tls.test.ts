/**
 * mqtts:// with a private CA, and an https:// artifact server with the same CA: a full install over
 * TLS on 127.0.0.1. Certificates are made at test time with the local openssl (nothing downloaded).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import tls from 'node:tls';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { generateSigningKey, publicKeyPem } from '../../firmware/keys.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceTopic, rolloutTopic } from '../../protocol/topics.js';
import { encodeMessage } from '../../protocol/parse.js';
import { parseAgentConfig } from '../../agent/config.js';
import { FileSlotBackend } from '../../agent/slots/slot-backend-file.js';
import { SimulatedDevice } from '../../agent/simulated-device.js';
import { silent, uniqueId, waitFor } from './harness.js';

let dir: string;
let ca: string;
let key: Buffer;
let cert: Buffer;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-agent-tls-'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=fleet test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  await writeFile(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'ext.cnf');
  ca = join(dir, 'ca.pem');
  key = await readFile(join(dir, 'server.key'));
  cert = await readFile(join(dir, 'server.pem'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  it('installs over mqtts:// and https:// trusting only the configured CA', async () => {
    const broker = await Aedes.createBroker();
    const mqttServer = tls.createServer({ key, cert }, broker.handle);
    await new Promise<void>((r) => mqttServer.listen(0, '127.0.0.1', r));
    const mqttPort = (mqttServer.address() as AddressInfo).port;
    const body = Buffer.alloc(32 * 1024, 'tls-image');
    const sha256 = createHash('sha256').update(body).digest('hex');
    const httpsServer = https.createServer({ key, cert }, (_req, res) => res.writeHead(200, { 'content-length': body.length }).end(body));
    await new Promise<void>((r) => httpsServer.listen(0, '127.0.0.1', r));
    const httpsPort = (httpsServer.address() as AddressInfo).port;

    const signing = generateSigningKey();
    await mkdir(join(dir, 'trust'), { recursive: true });
    await writeFile(join(dir, 'trust', 'release.pub'), publicKeyPem(signing));
    const id = uniqueId('tls');
    const config = parseAgentConfig({
      deviceId: id,
      hardwareModel: 'rpi4',
      firmwareVersion: '1.0.0',
      broker: { url: `mqtts://127.0.0.1:${mqttPort}`, caFile: ca, reconnectMin: 50, reconnectMax: 200 },
      trustStoreDir: join(dir, 'trust'),
      dataDir: join(dir, id, 'data'),
      slots: { kind: 'file', dir: join(dir, id, 'slots') },
      download: { caFile: ca, retryBase: 20, maxAttempts: 2 },
      health: { brokerDeadline: 5_000, trialWindow: 20_000 },
    });
    const slots = await FileSlotBackend.create({ dir: join(dir, id, 'slots') });
    const dev = new SimulatedDevice({ config, slots, logger: silent });
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${mqttPort}`, { ca: await readFile(ca), clientId: `obs-${randomUUID()}` });
    const statuses: string[] = [];
    client.on('message', (_t, p) => statuses.push((JSON.parse(p.toString()) as { state: string }).state));
    await client.subscribeAsync(deviceTopic(id, 'status'), { qos: 1 });
    try {
      await dev.start();
      await waitFor(() => dev.agent?.connected === true, 'connected over TLS');
      const m = buildManifest({
        firmwareVersion: '1.1.0',
        hardware: ['rpi4'],
        artifact: { url: `https://127.0.0.1:${httpsPort}/fw.img`, size: body.length, sha256 },
        issuedAt: Date.now(),
      });
      const msg = { v: 1, kind: 'rollout', deploymentId: 'tls-dep', wave: 0, manifest: signManifest(m, [signing]) };
      await client.publishAsync(rolloutTopic('rpi4', bucketOf(id)), encodeMessage(msg), { qos: 1, retain: true });
      await waitFor(() => statuses.includes('committed'), 'committed over TLS');
      expect(statuses).toContain('verifying');
    } finally {
      await dev.stop();
      await client.endAsync(true);
      await new Promise<void>((r) => broker.close(() => r()));
      mqttServer.close();
      httpsServer.closeAllConnections();
      httpsServer.close();
    }
  });
});
