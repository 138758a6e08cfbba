/**
 * The pure rules behind production's refusals: token strength, which hosts are loopback, the
 * development key's mark, maintenance windows that never open, and the agent keeping its custom
 * metrics within the protocol's bounds.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { estimateTokenBits, weakTokenReason } from '../../coordinator/token-strength.js';
import { isLoopbackHost, plaintextPaths } from '../../coordinator/listener-security.js';
import { generateDevelopmentKey, isDevelopmentKey } from '../../coordinator/signing.js';
import { generateSigningKey, privateKeyPem, signingKeyFromPem } from '../../firmware/keys.js';
import { windowNeverOpens } from '../../coordinator/engine/maintenance-window.js';
import { telemetryMessage } from '../../agent/agent-messages.js';
import { initialAgentState } from '../../agent/agent-state.js';
import { TelemetryMessageSchema } from '../../protocol/messages.js';

describe('admin token strength', () => {
  it.each([
    ['a'.repeat(16), /16 characters/],
    ['a'.repeat(64), /about 0 bits/],
    ['abababababababababababababababababab', /bits of entropy/],
    ['abcdefghijklmnopqrstuvwxyzABCDEFGHIJ', /bits of entropy/],
    ['0123456789abcdef0123456789abcdef', /bits of entropy/],
    ['changeme-changeme-changeme-changeme', /bits of entropy/],
    ['Password123Password123Password123!', /bits of entropy/],
  ])('refuses %j', (token, why) => {
    expect(weakTokenReason(token)).toMatch(why);
  });

  it('accepts what `openssl rand -base64 32` and `-hex 32` make, every time', () => {
    for (let i = 0; i < 2000; i++) {
      expect(weakTokenReason(randomBytes(32).toString('base64'))).toBeUndefined();
      expect(weakTokenReason(randomBytes(32).toString('hex'))).toBeUndefined();
    }
    expect(estimateTokenBits(randomBytes(32).toString('base64'))).toBeGreaterThan(150);
  });
});

describe('loopback and plaintext paths', () => {
  it.each([
    ['127.0.0.1', true], ['127.8.9.10', true], ['localhost', true], ['::1', true], ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true], ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.5', false], ['192.168.1.2', false], ['fleet.example.com', false],
    ['::ffff:10.0.0.1', false], ['localhost.example.com', false],
  ])('%s is loopback: %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  it('lists every plaintext path, and none when TLS covers them', () => {
    const plain = plaintextPaths({
      mqtt: { host: '0.0.0.0', port: 1883 },
      http: { host: '0.0.0.0', port: 8080, publicUrl: 'http://fw.example.com' },
    });
    expect(plain).toHaveLength(3);
    expect(plaintextPaths({
      mqtt: { host: '0.0.0.0', port: 8883, tlsCert: 'c.pem' },
      http: { host: '0.0.0.0', port: 8443, tlsCert: 'c.pem', publicUrl: 'https://fw.example.com' },
    })).toEqual([]);
    // An external broker: its URL matters, not the embedded listener's host.
    expect(plaintextPaths({ mqtt: { host: '0.0.0.0', port: 1883, brokerUrl: 'mqtts://broker:8883' }, http: { host: '127.0.0.1', port: 8080 } })).toEqual([]);
  });
});

describe('the development key mark', () => {
  it('is carried by generated development keys, through PEM, and by no ordinary key', () => {
    const dev = generateDevelopmentKey();
    expect(isDevelopmentKey(dev)).toBe(true);
    expect(isDevelopmentKey(signingKeyFromPem(privateKeyPem(dev)))).toBe(true);
    for (let i = 0; i < 200; i++) expect(isDevelopmentKey(generateSigningKey())).toBe(false);
    // Distinct keys, not one shared development key.
    expect(generateDevelopmentKey().keyid).not.toBe(dev.keyid);
  });
});

describe('maintenance windows that never open', () => {
  const from = Date.UTC(2026, 0, 5);
  it.each([
    ['0 0 31 2 *', /day of month 31 never falls in Feb/],
    ['0 0 30 feb *', /never falls in Feb/],
    ['0 0 31 4,6,9,11 *', /never falls in Apr,Jun,Sep,Nov/],
    ['0 0 30-31 2 +sun', /never falls in Feb/],
  ])('%s is refused', (cron, why) => {
    expect(windowNeverOpens({ cron }, from)).toMatch(why);
    expect(windowNeverOpens({ cron })).toMatch(why);
  });

  it.each(['0 0 29 2 *', '0 2 * * *', '0 0 31 2 mon', '0 0 31 * *', '0 0 30,31 2,3 *', '*/15 9-17 * * mon-fri', '0 0 L 2 *', '0 0 30-31 2 */2'])(
    '%s can open',
    (cron) => {
      expect(windowNeverOpens({ cron }, from)).toBeUndefined();
      expect(windowNeverOpens({ cron, timeZone: 'Pacific/Auckland' }, from)).toBeUndefined();
    },
  );

  it('refuses a window that opens only past the search horizon', () => {
    // 29 February on a Sunday (`+` asks for both day fields): 2032 is the next after 2026, beyond the
    // four-year horizon. The calendar alone allows it.
    expect(windowNeverOpens({ cron: '0 0 29 2 +sun' }, from)).toMatch(/does not open within 4 years of 2026-01-05/);
    expect(windowNeverOpens({ cron: '0 0 29 2 +sun' })).toBeUndefined();
    expect(windowNeverOpens({ cron: '0 0 29 2 +sun' }, Date.UTC(2029, 0, 1))).toBeUndefined();
  });
});

describe('agent custom metrics', () => {
  it('sends at most 64, each within the protocol bounds, so the coordinator never refuses the message', () => {
    const custom: Record<string, number> = { huge: 1e16, 'bad name': 1, nan: Number.NaN };
    for (let i = 0; i < 100; i++) custom[`m.${i}`] = i;
    const msg = telemetryMessage('pi-1', initialAgentState('1.0.0', 'A', 0), { metrics: {}, custom }, 1, 1, 1, 20, Date.now());
    expect(Object.keys(msg.custom)).toHaveLength(64);
    expect(msg.custom['huge']).toBeUndefined();
    expect(TelemetryMessageSchema.safeParse(msg).success).toBe(true);
  });
});
