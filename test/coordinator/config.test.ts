/** Configuration per APP_ENV: defaults, environment variables, and what staging/production refuse. */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../coordinator/config.js';
import { ConfigError } from '../../protocol/errors.js';
import { writeKeyPair } from '../../firmware/keys.js';
import { createCoordinator } from '../../coordinator/index.js';
import { silentLogger, tempDir } from './helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

// A token as `openssl rand -base64 32` makes one.
const prodBase = { signingKeyPath: '/keys/release.key', adminToken: 'q3Vx9LrT0m+8kZ2pWc5yHs7eJf1uGd4aNb6oXi3tEwY=' };

describe('coordinator config', () => {
  it('defaults to development on 127.0.0.1 and reads FLEET_* variables', () => {
    const c = loadConfig({}, { FLEET_DATA_DIR: '/var/lib/fleet', FLEET_MQTT_PORT: '1999', FLEET_HTTP_PORT: '0', FLEET_BROKER_URL: 'mqtt://broker:1883' });
    expect(c.env).toBe('development');
    expect(c.dataDir).toBe('/var/lib/fleet');
    expect(c.mqtt).toMatchObject({ port: 1999, host: '127.0.0.1', brokerUrl: 'mqtt://broker:1883' });
    expect(c.http.port).toBe(0);
    // Explicit options win over the environment.
    expect(loadConfig({ mqtt: { port: 7 } }, { FLEET_MQTT_PORT: '1999' }).mqtt.port).toBe(7);
  });

  it('names the field of an invalid value', () => {
    expect(() => loadConfig({}, { FLEET_MQTT_PORT: '70000' })).toThrow(/mqtt\.port/);
    expect(() => loadConfig({}, { APP_ENV: 'prod' })).toThrow(/env/);
    expect(() => loadConfig({}, { FLEET_BROKER_URL: 'http://x' })).toThrow(/mqtt:\/\//);
  });

  it.each(['staging', 'production'])('%s refuses anonymous devices and a missing key or token', (env) => {
    expect(() => loadConfig({ ...prodBase, allowAnonymousDevices: true }, { APP_ENV: env })).toThrow(/anonymous/);
    expect(() => loadConfig({ adminToken: prodBase.adminToken }, { APP_ENV: env })).toThrow(/signing key/);
    expect(() => loadConfig({ signingKeyPath: prodBase.signingKeyPath }, { APP_ENV: env })).toThrow(/FLEET_ADMIN_TOKEN/);
    expect(loadConfig(prodBase, { APP_ENV: env }).env).toBe(env);
  });

  it.each(['staging', 'production'])('%s refuses a guessable operator token', (env) => {
    const refuse = (adminToken: string, why: RegExp) =>
      expect(() => loadConfig({ ...prodBase, adminToken }, { APP_ENV: env })).toThrow(why);
    refuse('a'.repeat(16), /fewer than 32.*openssl rand -base64 32/);
    refuse('a'.repeat(40), /about 0 bits.*fewer than 128/);
    refuse('abcdefghijklmnopqrstuvwxyzABCDEFGHIJ', /bits of entropy/);
    refuse('changeme-changeme-changeme-changeme', /bits of entropy/);
    expect(() => loadConfig({ adminToken: 'a'.repeat(16) }, {})).not.toThrow();
  });

  it.each(['staging', 'production'])('%s refuses plaintext listeners beyond loopback and names the fix', (env) => {
    const at = (over: Record<string, unknown>) => () => loadConfig({ ...prodBase, ...over }, { APP_ENV: env });
    expect(at({ mqtt: { host: '0.0.0.0' } })).toThrow(/plaintext MQTT on 0\.0\.0\.0:1883: set FLEET_TLS_CERT and FLEET_TLS_KEY/);
    expect(at({ http: { host: '::' } })).toThrow(/plaintext HTTP on :::8080.*FLEET_HTTP_TLS_CERT/);
    expect(at({ http: { host: '10.0.0.5' } })).toThrow(ConfigError);
    expect(at({ mqtt: { brokerUrl: 'mqtt://broker.example.com:1883' } })).toThrow(/mqtts:\/\//);
    expect(at({ http: { publicUrl: 'http://fw.example.com/' } })).toThrow(/FLEET_PUBLIC_URL an https:\/\/ URL/);
    // TLS configured, loopback, or an https public URL: accepted.
    const tls = { tlsCert: '/tls/cert.pem', tlsKey: '/tls/key.pem' };
    expect(at({ mqtt: { host: '0.0.0.0', ...tls }, http: { host: '0.0.0.0', ...tls, publicUrl: 'https://fw.example.com/' } })).not.toThrow();
    expect(at({ mqtt: { host: '127.0.0.2' }, http: { host: 'localhost', publicUrl: 'https://fw.example.com/' } })).not.toThrow();
    expect(at({ mqtt: { brokerUrl: 'mqtt://127.0.0.1:1883' } })).not.toThrow();
    // Development keeps its plaintext convenience.
    expect(() => loadConfig({ mqtt: { host: '0.0.0.0' }, http: { host: '0.0.0.0' } }, {})).not.toThrow();
  });

  it('reads the embedded cluster from the environment and refuses it with an external broker or plaintext Redis beyond loopback', () => {
    expect(loadConfig({}, {}).mqtt.cluster).toBeUndefined();
    expect(loadConfig({}, { FLEET_CLUSTER_REDIS: 'redis://127.0.0.1:6379', FLEET_CLUSTER_NODE: 'n1' }).mqtt.cluster).toEqual({ redisUrl: 'redis://127.0.0.1:6379', nodeName: 'n1' });
    expect(() => loadConfig({}, { FLEET_CLUSTER_REDIS: 'http://x' })).toThrow(/mqtt\.cluster\.redisUrl.*redis:\/\//);
    expect(() => loadConfig({}, { FLEET_CLUSTER_REDIS: 'redis://127.0.0.1:6379', FLEET_BROKER_URL: 'mqtt://broker:1883' })).toThrow(/external broker/);
    const prodTls = { ...prodBase, mqtt: { host: '0.0.0.0', tlsCert: '/c.pem', tlsKey: '/k.pem' }, http: { host: '127.0.0.1' } };
    expect(() => loadConfig(prodTls, { APP_ENV: 'production', FLEET_CLUSTER_REDIS: 'redis://redis.internal:6379' })).toThrow(/rediss:\/\//);
    expect(loadConfig(prodTls, { APP_ENV: 'production', FLEET_CLUSTER_REDIS: 'rediss://redis.internal:6379' }).mqtt.cluster?.redisUrl).toBe('rediss://redis.internal:6379');
    expect(loadConfig(prodTls, { APP_ENV: 'production', FLEET_CLUSTER_REDIS: 'redis://127.0.0.1:6379' }).mqtt.cluster?.redisUrl).toBe('redis://127.0.0.1:6379');
  });

  it('reads the TLS files from the environment and wants certificate and key together', () => {
    const c = loadConfig({}, { FLEET_HTTP_TLS_CERT: '/h.pem', FLEET_HTTP_TLS_KEY: '/h.key', FLEET_TLS_CERT: '/m.pem', FLEET_TLS_KEY: '/m.key', FLEET_TLS_CLIENT_CA: '/ca.pem' });
    expect(c.http).toMatchObject({ tlsCert: '/h.pem', tlsKey: '/h.key' });
    expect(c.mqtt).toMatchObject({ tlsCert: '/m.pem', tlsKey: '/m.key', tlsClientCa: '/ca.pem' });
    expect(() => loadConfig({}, { FLEET_HTTP_TLS_CERT: '/h.pem' })).toThrow(/FLEET_HTTP_TLS_CERT and FLEET_HTTP_TLS_KEY/);
    expect(() => loadConfig({}, { FLEET_TLS_CLIENT_CA: '/ca.pem' })).toThrow(/FLEET_TLS_CLIENT_CA/);
  });

  it('production refuses cheap device secret hashing', () => {
    expect(() => loadConfig({ ...prodBase, credentialCost: 10 }, { APP_ENV: 'production' })).toThrow(/credentialCost/);
  });

  it('production refuses a key the development coordinator generated, even copied elsewhere', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dataDir = join(t.dir, 'data');
    const dev = await createCoordinator({ logger: silentLogger, config: { dataDir, mqtt: { port: 0 }, http: { port: 0 }, credentialCost: 4 } });
    await dev.stop();
    // Copy the dev key under an innocent name.
    const { readFileSync, writeFileSync } = await import('node:fs');
    const copied = join(t.dir, 'release.key');
    writeFileSync(copied, readFileSync(join(dataDir, 'keys', 'dev-signing.key')));
    await expect(
      createCoordinator({ logger: silentLogger, env: { APP_ENV: 'production' }, config: { dataDir, signingKeyPath: copied, adminToken: prodBase.adminToken, mqtt: { port: 0 }, http: { port: 0 } } }),
    ).rejects.toThrow(/development signing key/);
    // A real release key is accepted.
    const { privatePath } = await writeKeyPair(join(t.dir, 'release'), 'release');
    const prod = await createCoordinator({
      logger: silentLogger,
      env: { APP_ENV: 'production' },
      config: { dataDir, signingKeyPath: privatePath, adminToken: prodBase.adminToken, mqtt: { port: 0 }, http: { port: 0 } },
    });
    expect(prod.config.env).toBe('production');
    await prod.stop();
  });
});

describe('start-up failures', () => {
  it('releases everything it opened when a port is taken, and the data dir stays usable', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const dataDir = join(t.dir, 'data');
    await expect(
      createCoordinator({ logger: silentLogger, config: { dataDir, mqtt: { port }, http: { port: 0 }, credentialCost: 4 } }),
    ).rejects.toThrow(/choose another --mqtt-port/);
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    const c = await createCoordinator({ logger: silentLogger, config: { dataDir, mqtt: { port: 0 }, http: { port: 0 }, credentialCost: 4 } });
    await c.stop();
  });
});
