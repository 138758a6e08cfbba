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
    const bound = { firmwareVersion: '1.3.0', rollback: true, deploymentId: 'd-rb', installableOver: '>1.3.0' };
    const r = verifyManifest(sign([k1], { ...bound, securityVersion: 1 }), trust1, device);
    expect(!r.ok && r.reason).toBe('below-security-floor');
    const ok = verifyManifest(sign([k1], { ...bound, securityVersion: 2 }), trust1, device);
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

  const at = (lastSeq = 0) => ({ now: NOW, deviceId: 'pi-1', lastSeq });

  it('accepts a command for this device whose seq is above the newest executed', () => {
    expect(verifyCommand(cmd(), trust1, at()).ok).toBe(true);
    expect(verifyCommand(cmd({ seq: 11 }), trust1, at(10)).ok).toBe(true);
    expect(cmd().signed.seq).toBe(NOW); // default: the signing time in ms
  });

  it('refuses another device, replays, expiry, tampering and a manifest posing as a command', () => {
    expect(verifyCommand(cmd(), trust1, { ...at(), deviceId: 'pi-2' })).toMatchObject({ ok: false, reason: 'wrong-device' });
    expect(verifyCommand(cmd({ ttlMs: 1000 }), trust1, { ...at(), now: NOW + 3600_000 })).toMatchObject({ ok: false, reason: 'expired' });
    const t = clone(cmd());
    (t.signed as { action: string }).action = 'reboot';
    expect(verifyCommand(t, trust1, at())).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(verifyCommand(sign([k1]), trust1, at())).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it.each([
    { name: 'seq equal to the newest executed', seq: 10, lastSeq: 10, reason: 'replayed' },
    { name: 'seq below the newest executed', seq: 9, lastSeq: 10, reason: 'replayed' },
    { name: 'a command replayed after 260 others', seq: 5, lastSeq: 265, reason: 'replayed' },
    { name: 'seq above', seq: 11, lastSeq: 10, reason: undefined },
  ])('sequence: $name', ({ seq, lastSeq, reason }) => {
    const r = verifyCommand(cmd({ seq }), trust1, at(lastSeq));
    if (reason === undefined) expect(r.ok).toBe(true);
    else expect(r).toMatchObject({ ok: false, reason });
  });

  it('refuses a command without a seq (signed by an older tool): it cannot be told from a replay', () => {
    const unsequenced = clone(cmd());
    delete (unsequenced.signed as { seq?: number }).seq;
    const resigned = signCommand(unsequenced.signed, [k1]);
    const r = verifyCommand(resigned, trust1, at());
    expect(r).toMatchObject({ ok: false, reason: 'malformed' });
    expect(!r.ok && r.detail).toMatch(/no seq/);
  });
});

describe('manifest freshness and rollback binding', () => {
  const at = (metadataVersion: number, deploymentId?: string) => ({ ...device, deploymentId: 'd-new', freshness: { metadataVersion, deploymentId } });

  it.each([
    { name: 'above the newest accepted', mv: 101, accepted: at(100, 'd-old'), offered: 'd-new', reason: undefined },
    { name: 'equal, under the same deployment (its retained manifest again)', mv: 100, accepted: at(100, 'd-new'), offered: 'd-new', reason: undefined },
    { name: 'equal, under another deployment (a replay under a new id)', mv: 100, accepted: at(100, 'd-old'), offered: 'd-new', reason: 'stale-manifest' },
    { name: 'below the newest accepted', mv: 99, accepted: at(100, 'd-old'), offered: 'd-new', reason: 'stale-manifest' },
    { name: 'a fresh device (nothing accepted yet)', mv: 1, accepted: at(0), offered: 'd-new', reason: undefined },
  ])('metadataVersion $name', ({ mv, accepted, offered, reason }) => {
    const r = verifyManifest(sign([k1], { metadataVersion: mv }), trust1, { ...accepted, deploymentId: offered });
    if (reason === undefined) expect(r.ok).toBe(true);
    else {
      expect(r).toMatchObject({ ok: false, reason });
      expect(!r.ok && r.detail).toMatch(/metadataVersion/);
    }
  });

  it('refuses a manifest without a metadataVersion (signed by an older tool)', () => {
    const old = manifest();
    delete (old as { metadataVersion?: number }).metadataVersion;
    expect(verifyManifest(signManifest(old, [k1]), trust1, at(0))).toMatchObject({ ok: false, reason: 'stale-manifest' });
    // `fleet firmware verify` without a device's freshness does not check it.
    expect(verifyManifest(signManifest(old, [k1]), trust1, device).ok).toBe(true);
  });

  it('defaults the metadataVersion to the signing time and honours an explicit one', () => {
    expect(manifest().metadataVersion).toBe(NOW - 60_000);
    expect(manifest({ metadataVersion: 7 }).metadataVersion).toBe(7);
  });

  it('refuses a bound manifest offered under another deployment', () => {
    const r = verifyManifest(sign([k1], { deploymentId: 'd-1' }), trust1, { ...device, deploymentId: 'd-2' });
    expect(r).toMatchObject({ ok: false, reason: 'malformed' });
    expect(!r.ok && r.detail).toMatch(/signed for deployment d-1/);
  });

  const rollback = { firmwareVersion: '1.3.0', rollback: true, securityVersion: 2 };
  it.each([
    { name: 'bound to its deployment and the versions it undoes', over: { deploymentId: 'd-rb', installableOver: '>=1.4.0 <1.5.0' }, problem: null },
    { name: 'without a deployment', over: { installableOver: '>=1.4.0' }, problem: /bound to one deployment/ },
    { name: 'installable over anything', over: { deploymentId: 'd-rb', installableOver: '*' }, problem: /versions it undoes/ },
    { name: 'installable over its own version', over: { deploymentId: 'd-rb', installableOver: '>=1.0.0' }, problem: /versions it undoes/ },
  ])('a rollback manifest $name', ({ over, problem }) => {
    if (problem === null) {
      expect(verifyManifest(sign([k1], { ...rollback, ...over }), trust1, { ...device, deploymentId: 'd-rb' }).ok).toBe(true);
      expect(manifest({ ...rollback, ...over }).expiresAt).toBe(new Date(NOW - 60_000 + 24 * 3600_000).toISOString());
      return;
    }
    // buildManifest refuses to sign it; a device refuses one signed by other tools.
    expect(() => manifest({ ...rollback, ...over })).toThrow(problem);
    const forged = { ...manifest({ installableOver: '>=1.0.0 <2.0.0' }), ...rollback, ...over };
    if (!('deploymentId' in over)) delete (forged as { deploymentId?: string }).deploymentId;
    const r = verifyManifest(signManifest(forged, [k1]), trust1, device);
    expect(r).toMatchObject({ ok: false, reason: 'unbound-rollback' });
    expect(!r.ok && r.detail).toMatch(problem);
  });

  it('defaults lifetimes short: 7 days for a manifest, 24 hours for a rollback manifest and a command', () => {
    const m = buildManifest({ firmwareVersion: '1.5.0', hardware: ['rpi4'], artifact: { url: 'http://127.0.0.1/a', size: 1, sha256: 'ab'.repeat(32) }, issuedAt: NOW });
    expect(Date.parse(m.expiresAt) - NOW).toBe(7 * 24 * 3600_000);
    const c = buildCommand({ commandId: 'c', deviceId: 'pi-1', action: 'reboot', issuedAt: NOW });
    expect(Date.parse(c.expiresAt) - NOW).toBe(24 * 3600_000);
  });
});
