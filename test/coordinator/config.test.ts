/** Configuration per APP_ENV: defaults, environment variables, and what staging/production refuse. */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../coordinator/config.js';
import { ConfigError } from '../../protocol/errors.js';
import { writeKeyPair } from '../../firmware/keys.js';
import { Coordinator } from '../../coordinator/index.js';
import { silentLogger, tempDir } from './helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const prodBase = { signingKeyPath: '/keys/release.key', adminToken: 'a-long-operator-token-123' };

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

  it.each(['staging', 'production'])('%s refuses anonymous devices, a missing key or token, and the development key', (env) => {
    expect(() => loadConfig({ ...prodBase, allowAnonymousDevices: true }, { APP_ENV: env })).toThrow(/anonymous/);
    expect(() => loadConfig({ adminToken: prodBase.adminToken }, { APP_ENV: env })).toThrow(/signing key/);
    expect(() => loadConfig({ signingKeyPath: prodBase.signingKeyPath }, { APP_ENV: env })).toThrow(/FLEET_ADMIN_TOKEN/);
    expect(() => loadConfig({ ...prodBase, signingKeyPath: '/data/keys/dev-signing.key' }, { APP_ENV: env })).toThrow(ConfigError);
    expect(loadConfig(prodBase, { APP_ENV: env }).env).toBe(env);
  });

  it('production refuses cheap device secret hashing', () => {
    expect(() => loadConfig({ ...prodBase, credentialCost: 10 }, { APP_ENV: 'production' })).toThrow(/credentialCost/);
  });

  it('production refuses a key the development coordinator generated, even copied elsewhere', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dataDir = join(t.dir, 'data');
    const dev = await Coordinator.create({ logger: silentLogger, config: { dataDir, mqtt: { port: 0 }, http: { port: 0 }, credentialCost: 4 } });
    await dev.stop();
    // Copy the dev key under an innocent name.
    const { readFileSync, writeFileSync } = await import('node:fs');
    const copied = join(t.dir, 'release.key');
    writeFileSync(copied, readFileSync(join(dataDir, 'keys', 'dev-signing.key')));
    await expect(
      Coordinator.create({ logger: silentLogger, env: { APP_ENV: 'production' }, config: { dataDir, signingKeyPath: copied, adminToken: prodBase.adminToken, mqtt: { port: 0 }, http: { port: 0 } } }),
    ).rejects.toThrow(/development signing key/);
    // A real release key is accepted.
    const { privatePath } = await writeKeyPair(join(t.dir, 'release'), 'release');
    const prod = await Coordinator.create({
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
      Coordinator.create({ logger: silentLogger, config: { dataDir, mqtt: { port }, http: { port: 0 }, credentialCost: 4 } }),
    ).rejects.toThrow(/choose another --mqtt-port/);
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    const c = await Coordinator.create({ logger: silentLogger, config: { dataDir, mqtt: { port: 0 }, http: { port: 0 }, credentialCost: 4 } });
    await c.stop();
  });
});
