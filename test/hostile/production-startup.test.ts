/**
 * Insecure production settings, as an operator would try them: `fleet coordinator start` in its own
 * process with APP_ENV=production (or staging) exits non-zero with one line that names the fix, and
 * opens nothing. Then the same command with the fixes applied starts, and SIGTERM ends it with 0.
 */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeKeyPair } from '../../firmware/keys.js';
import { createCoordinator } from '../../coordinator/index.js';
import { freePort, spawnFleet } from '../support/processes.js';
import { silentLogger, tempDir } from '../coordinator/helpers.js';
import { makePki, type TestPki } from './pki.js';

let dir: string;
let pki: TestPki;
let releaseKey: string;
let copiedDevKey: string;
const strongToken = randomBytes(32).toString('base64');

beforeAll(async () => {
  const t = tempDir('fleet-prod-start-');
  dir = t.dir;
  mkdirSync(join(dir, 'pki'));
  pki = makePki(join(dir, 'pki'));
  releaseKey = (await writeKeyPair(join(dir, 'release'), 'release')).privatePath;
  // A development coordinator generates its key in its own data dir; the operator copies it under an
  // innocent name for production, whose data dir never saw it.
  const dev = await createCoordinator({ logger: silentLogger, config: { dataDir: join(dir, 'dev-data'), mqtt: { port: 0 }, http: { port: 0 }, credentialCost: 4 } });
  await dev.stop();
  copiedDevKey = join(dir, 'release', 'fleet-release.key');
  copyFileSync(join(dir, 'dev-data', 'keys', 'dev-signing.key'), copiedDevKey);
  return t.cleanup;
});

/** Runs `fleet coordinator start` and expects a refusal: exit code, the one line, and no listener. */
async function refused(args: string[], env: Record<string, string>): Promise<string> {
  const dataDir = join(dir, `data-${randomBytes(4).toString('hex')}`);
  const p = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', ...args], { env: { APP_ENV: 'production', ...env } });
  const exit = await p.exited;
  const lines = p.lines.filter((l) => l.trim() !== '');
  expect(exit.code, p.output()).not.toBe(0);
  expect(lines, 'exactly one line, no stack trace').toHaveLength(1);
  expect(lines[0]).toMatch(/^error \[config\]: (production|staging) /);
  // Refused before anything was opened: no database in the data dir.
  expect(existsSync(join(dataDir, 'fleet.db'))).toBe(false);
  return lines[0]!;
}

const secure = (): string[] => ['--signing-key', releaseKey];

describe('fleet coordinator start with APP_ENV=production', () => {
  it('refuses plaintext MQTT on 0.0.0.0 and names the TLS settings', async () => {
    const line = await refused([...secure(), '--host', '0.0.0.0'], { FLEET_ADMIN_TOKEN: strongToken });
    expect(line).toMatch(/plaintext MQTT on 0\.0\.0\.0:\d+: set FLEET_TLS_CERT and FLEET_TLS_KEY \(--mqtt-tls-cert, --mqtt-tls-key; see docs\/tls\.md\)/);
  });

  it('refuses plaintext HTTP on 0.0.0.0 when MQTT has TLS', async () => {
    const line = await refused(
      [...secure(), '--host', '0.0.0.0', '--mqtt-tls-cert', pki.serverCert, '--mqtt-tls-key', pki.serverKey],
      { FLEET_ADMIN_TOKEN: strongToken },
    );
    expect(line).toMatch(/plaintext HTTP on 0\.0\.0\.0:\d+ \(admin API and artifact downloads\): set FLEET_HTTP_TLS_CERT and FLEET_HTTP_TLS_KEY/);
  });

  it('refuses a plaintext public artifact URL and an mqtt:// external broker beyond loopback', async () => {
    expect(await refused([...secure(), '--public-url', 'http://fw.example.com/'], { FLEET_ADMIN_TOKEN: strongToken })).toMatch(/https:\/\//);
    expect(await refused([...secure(), '--broker', 'mqtt://broker.example.com:1883'], { FLEET_ADMIN_TOKEN: strongToken })).toMatch(/mqtts:\/\//);
  });

  it('refuses a token of sixteen a\'s, and says what a good one is', async () => {
    const line = await refused(secure(), { FLEET_ADMIN_TOKEN: 'a'.repeat(16) });
    expect(line).toMatch(/refuses FLEET_ADMIN_TOKEN: it has 16 characters, fewer than 32; generate one with `openssl rand -base64 32`/);
    expect(await refused(secure(), { FLEET_ADMIN_TOKEN: 'a'.repeat(48) })).toMatch(/about 0 bits of entropy, fewer than 128/);
  });

  it('refuses the development signing key copied to another path and data dir, by what the key is', async () => {
    const line = await refused(['--signing-key', copiedDevKey], { FLEET_ADMIN_TOKEN: strongToken });
    expect(line).toMatch(/refuses the development signing key [0-9a-f]{16}… \(.*fleet-release\.key\).*fleet firmware keygen/);
  });

  it('staging refuses the same way', async () => {
    expect(await refused([...secure(), '--host', '0.0.0.0'], { APP_ENV: 'staging', FLEET_ADMIN_TOKEN: strongToken })).toMatch(/^error \[config\]: staging refuses plaintext MQTT/);
  });

  it('names the file when a certificate or key is unusable, in one line', async () => {
    const garbage = join(dir, 'not-a-cert.pem');
    writeFileSync(garbage, 'not PEM\n');
    const tls = (which: 'mqtt' | 'http', cert: string, key: string) => [`--${which}-tls-cert`, cert, `--${which}-tls-key`, key];
    for (const [args, want] of [
      [[...tls('mqtt', garbage, pki.serverKey), ...tls('http', pki.serverCert, pki.serverKey)], /^error \[mqtt-tls\]: MQTT TLS certificate .*not-a-cert\.pem.* unusable: .*docs\/tls\.md/],
      [[...tls('mqtt', pki.serverCert, pki.serverKey), ...tls('http', pki.serverCert, pki.deviceCert('x').key)], /^error \[http-tls\]: HTTPS certificate .* are unusable: .*belong together/],
      [[...tls('mqtt', pki.serverCert, pki.serverKey), ...tls('http', join(dir, 'missing.pem'), pki.serverKey)], /^error \[http-tls\]: cannot read the HTTPS certificate .*missing\.pem/],
    ] as const) {
      const p = spawnFleet(
        ['coordinator', 'start', '--data-dir', join(dir, `data-${randomBytes(4).toString('hex')}`), '--mqtt-port', '0', '--http-port', '0', '--log-level', 'warn', ...secure(), ...args],
        { env: { APP_ENV: 'production', FLEET_ADMIN_TOKEN: strongToken } },
      );
      const exit = await p.exited;
      expect(exit.code, p.output()).not.toBe(0);
      expect(p.lines.filter((l) => l.trim() !== ''), p.output()).toHaveLength(1);
      expect(p.lines[0]).toMatch(want);
    }
  });

  it('starts with the fixes applied, and SIGTERM ends it with 0', async () => {
    const mqttPort = await freePort();
    const httpPort = await freePort();
    const p = spawnFleet(
      ['coordinator', 'start', '--data-dir', join(dir, 'data-ok'), '--mqtt-port', String(mqttPort), '--http-port', String(httpPort), ...secure(),
        '--mqtt-tls-cert', pki.serverCert, '--mqtt-tls-key', pki.serverKey, '--http-tls-cert', pki.serverCert, '--http-tls-key', pki.serverKey],
      { env: { APP_ENV: 'production', FLEET_ADMIN_TOKEN: strongToken } },
    );
    try {
      const banner = await p.waitForLine(/^fleet coordinator \(production\)/, 60_000);
      expect(banner).toContain(`mqtts://127.0.0.1:${mqttPort}`);
      expect(banner).toContain(`https://127.0.0.1:${httpPort}`);
    } finally {
      expect((await p.stop()).code, p.output()).toBe(0);
    }
  });
});
