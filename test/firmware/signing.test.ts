import { describe, expect, it } from 'vitest';
import { generateSigningKey, type SigningKey } from '../../firmware/keys.js';
import { createTrustStore } from '../../firmware/trust-store.js';
import { addSignatures, signDocument } from '../../firmware/envelope.js';
import {
  buildCommand,
  buildManifest,
  signCommand,
  signManifest,
  verifyCommand,
  verifyManifest,
  type DeviceContext,
} from '../../firmware/manifest.js';
import { canonicalBytes } from '../../firmware/canonical-json.js';

const NOW = Date.parse('2026-11-26T12:00:00Z');
const k1 = generateSigningKey();
const k2 = generateSigningKey();
const k3 = generateSigningKey();

const manifest = (over: Partial<Parameters<typeof buildManifest>[0]> = {}) =>
  buildManifest({
    firmwareVersion: '1.5.0',
    hardware: ['rpi4', 'rpi5'],
    installableOver: '>=1.0.0 <2.0.0',
    artifact: { url: 'http://127.0.0.1:8080/a.img', size: 1024, sha256: 'ab'.repeat(32) },
    securityVersion: 3,
    issuedAt: NOW - 60_000,
    ttlMs: 24 * 3600_000,
    ...over,
  });

const device: DeviceContext = { now: NOW, hardwareModel: 'rpi4', currentVersion: '1.4.2', securityFloor: 2 };
const trust1 = createTrustStore([k1]);
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const sign = (keys: SigningKey[], over = {}) => signManifest(manifest(over), keys);

describe('manifest verification', () => {
  it('accepts a good manifest and returns the parsed document', () => {
    const r = verifyManifest(sign([k1]), trust1, device);
    expect(r.ok).toBe(true);
    expect(r.ok && r.value.firmwareVersion).toBe('1.5.0');
    expect(r.ok && r.keyIds).toEqual([k1.keyid]);
  });

  it('refuses a flip of any single byte of the signed part', () => {
    const env = sign([k1]);
    const bytes = canonicalBytes(env.signed);
    // Flip one character in each field's value by editing the JSON text at every position that stays valid JSON.
    const text = bytes.toString('utf8');
    let tried = 0;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      const alt = /[0-9]/.test(ch) ? String((Number(ch) + 1) % 10) : /[a-z]/.test(ch) ? (ch === 'a' ? 'b' : 'a') : null;
      if (alt === null) continue;
      let signed: unknown;
      try {
        signed = JSON.parse(text.slice(0, i) + alt + text.slice(i + 1));
      } catch {
        continue;
      }
      tried++;
      const r = verifyManifest({ signed, signatures: env.signatures }, trust1, device);
      expect(r.ok, `flip at ${i} (${text.slice(Math.max(0, i - 10), i + 10)})`).toBe(false);
    }
    expect(tried).toBeGreaterThan(100);
  });

  it('refuses a flip of any byte of the signature', () => {
    const env = sign([k1]);
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    for (let i = 0; i < sig.length; i++) {
      const bad = Buffer.from(sig);
      bad[i] = bad[i]! ^ 0x01;
      const r = verifyManifest({ signed: env.signed, signatures: [{ keyid: k1.keyid, sig: bad.toString('base64') }] }, trust1, device);
      expect(r.ok === false && r.reason).toBe('bad-signature');
    }
  });

  it.each([
    ['unknown-key', () => verifyManifest(sign([k2]), trust1, device)],
    ['malformed', () => verifyManifest({ signed: 'x', signatures: [] }, trust1, device)],
    ['malformed', () => verifyManifest(signDocument({ _type: 'command' }, [k1]), trust1, device)],
    ['malformed', () => verifyManifest(signDocument({ _type: 'manifest', v: 1 }, [k1]), trust1, device)],
    ['expired', () => verifyManifest(sign([k1]), trust1, { ...device, now: NOW + 2 * 24 * 3600_000 })],
    ['not-yet-valid', () => verifyManifest(sign([k1], { issuedAt: NOW + 3600_000 }), trust1, device)],
    ['wrong-hardware', () => verifyManifest(sign([k1]), trust1, { ...device, hardwareModel: 'rpi3' })],
    ['version-not-installable', () => verifyManifest(sign([k1]), trust1, { ...device, currentVersion: '2.1.0' })],
    ['version-not-installable', () => verifyManifest(sign([k1], { firmwareVersion: '1.0.0' }), trust1, device)],
    ['below-security-floor', () => verifyManifest(sign([k1], { securityVersion: 1 }), trust1, device)],
    ['missing-tags', () => verifyManifest(sign([k1], { tags: ['lab'] }), trust1, device)],
  ] as const)('refuses with reason %s', (reason, run) => {
    const r = run();
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toBe(reason);
    expect(!r.ok && r.detail.length).toBeGreaterThan(5);
  });

  it('refuses a downgrade below the security floor even when signed as a rollback', () => {
    const r = verifyManifest(sign([k1], { firmwareVersion: '1.3.0', rollback: true, securityVersion: 1 }), trust1, device);
    expect(!r.ok && r.reason).toBe('below-security-floor');
    const ok = verifyManifest(sign([k1], { firmwareVersion: '1.3.0', rollback: true, securityVersion: 2 }), trust1, device);
    expect(ok.ok).toBe(true);
  });

  it('tolerates bounded clock skew only', () => {
    const env = sign([k1], { issuedAt: NOW + 60_000 });
    expect(verifyManifest(env, trust1, device).ok).toBe(true);
    expect(verifyManifest(env, trust1, { ...device, clockSkewMs: 1000 }).ok).toBe(false);
  });

  it('needs threshold signatures from distinct trusted keys', () => {
    const trust2of3 = createTrustStore([k1, k2, k3], 2);
    expect(verifyManifest(sign([k1]), trust2of3, device)).toMatchObject({ ok: false, reason: 'below-threshold' });
    // The same key twice does not count twice.
    const dup = sign([k1]);
    expect(verifyManifest({ ...dup, signatures: [...dup.signatures, ...dup.signatures] }, trust2of3, device)).toMatchObject({ ok: false, reason: 'below-threshold' });
    expect(verifyManifest(sign([k1, k3]), trust2of3, device).ok).toBe(true);
  });

  it('survives key rotation: old and new both sign during the overlap', () => {
    const oldDevices = createTrustStore([k1]);
    const rotated = createTrustStore([k1, k2]);
    const newDevices = createTrustStore([k2]);
    const env = addSignatures(sign([k1]), [k2]);
    for (const trust of [oldDevices, rotated, newDevices]) expect(verifyManifest(env, trust, device).ok).toBe(true);
    // After the overlap, a manifest signed only by the retired key fails on new devices.
    expect(verifyManifest(sign([k1]), newDevices, device)).toMatchObject({ ok: false, reason: 'unknown-key' });
  });

  it('ignores an untrusted extra signature next to a valid one', () => {
    const env = addSignatures(sign([k1]), [k3]);
    expect(verifyManifest(env, trust1, device).ok).toBe(true);
    const tampered = clone(env);
    tampered.signatures[0]!.sig = tampered.signatures[1]!.sig;
    expect(verifyManifest(tampered, trust1, device)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses an invalid semver range at build time', () => {
    expect(() => manifest({ installableOver: 'not a range!' })).toThrow(/installableOver/);
  });
});

describe('command verification', () => {
  const cmd = (over: Partial<Parameters<typeof buildCommand>[0]> = {}) =>
    signCommand(buildCommand({ commandId: 'c-1', deviceId: 'pi-1', action: 'rollback', deploymentId: 'd1', issuedAt: NOW, ...over }), [k1]);

  it('accepts a command for this device', () => {
    expect(verifyCommand(cmd(), trust1, { now: NOW, deviceId: 'pi-1' }).ok).toBe(true);
  });

  it('refuses another device, replays, expiry, tampering and a manifest posing as a command', () => {
    expect(verifyCommand(cmd(), trust1, { now: NOW, deviceId: 'pi-2' })).toMatchObject({ ok: false, reason: 'wrong-device' });
    expect(verifyCommand(cmd(), trust1, { now: NOW, deviceId: 'pi-1', seen: (id) => id === 'c-1' })).toMatchObject({ ok: false, reason: 'replayed' });
    expect(verifyCommand(cmd({ ttlMs: 1000 }), trust1, { now: NOW + 3600_000, deviceId: 'pi-1' })).toMatchObject({ ok: false, reason: 'expired' });
    const t = clone(cmd());
    (t.signed as { action: string }).action = 'reboot';
    expect(verifyCommand(t, trust1, { now: NOW, deviceId: 'pi-1' })).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(verifyCommand(sign([k1]), trust1, { now: NOW, deviceId: 'pi-1' })).toMatchObject({ ok: false, reason: 'malformed' });
  });
});
