/**
 * The stored forms of secrets (secret-hash.ts): a generated device secret as sha256, a person's
 * password as scrypt; each verifies its own secret only, and a form it does not know never verifies.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decoyCheck,
  fastHash,
  isGeneratedSecret,
  newDeviceSecret,
  scryptHash,
  storedForm,
  verifyFast,
  verifyScrypt,
} from '../../coordinator/broker/secret-hash.js';

describe('device secrets in the fast form', () => {
  it('are 192 random bits as 32 base64url characters, different every time', () => {
    const a = newDeviceSecret();
    const b = newDeviceSecret();
    expect(a).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(24);
    expect(a).not.toBe(b);
    expect([isGeneratedSecret(a), isGeneratedSecret(b)]).toEqual([true, true]);
  });

  it('store sha256$<base64 digest>, never the secret', () => {
    const secret = newDeviceSecret();
    const stored = fastHash(secret);
    expect(stored).toBe(`sha256$${createHash('sha256').update(secret).digest('base64')}`);
    expect(stored).not.toContain(secret);
    expect(storedForm(stored)).toBe('sha256');
  });

  it('verify the secret and nothing else', () => {
    const secret = newDeviceSecret();
    const stored = fastHash(secret);
    expect(verifyFast(secret, stored)).toBe(true);
    const oneCharOff = `${secret[0] === 'A' ? 'B' : 'A'}${secret.slice(1)}`;
    for (const wrong of [newDeviceSecret(), oneCharOff, secret.slice(1), `${secret}x`, '', 'x'.repeat(100_000)]) {
      expect(verifyFast(wrong, stored)).toBe(false);
    }
  });

  it.each([
    ['a digest cut short', (s: string) => s.slice(0, -4)],
    ['a digest too long', (s: string) => `${s}AAAA`],
    ['another prefix', (s: string) => s.replace('sha256$', 'sha512$')],
    ['no digest', () => 'sha256$'],
  ])('refuse a stored value with %s (no throw from the constant-time compare)', (_what, damage) => {
    const secret = newDeviceSecret();
    expect(verifyFast(secret, damage(fastHash(secret)))).toBe(false);
  });

  it('are refused for a secret a person chose: that one must stay scrypt', () => {
    for (const chosen of ['correct horse battery staple', 'short', `${newDeviceSecret()}!`, newDeviceSecret().slice(1)]) {
      expect(isGeneratedSecret(chosen)).toBe(false);
      expect(() => fastHash(chosen)).toThrow(/generated device secret/);
    }
  });

  it('an unknown device costs a hash and a compare and is refused', () => {
    expect(decoyCheck(newDeviceSecret())).toBe(false);
    expect(decoyCheck('')).toBe(false);
  });
});

describe('scrypt (passwords, and device secrets stored before the fast form)', () => {
  it('verifies its own secret at the cost it names, and nothing else', async () => {
    const stored = await scryptHash('a person chose this', 4);
    expect(stored).toMatch(/^scrypt\$4\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(storedForm(stored)).toBe('scrypt');
    expect(await verifyScrypt('a person chose this', stored)).toBe(true);
    expect(await verifyScrypt('a person chose that', stored)).toBe(false);
    // The forms do not cross: a scrypt hash never passes the fast check, nor a fast one scrypt's.
    expect(verifyFast('a person chose this', stored)).toBe(false);
    const secret = newDeviceSecret();
    expect(await verifyScrypt(secret, fastHash(secret))).toBe(false);
  });

  it.each(['scrypt$0$8$1$AA==$AA==', 'scrypt$21$8$1$AA==$AA==', 'scrypt$x$8$1$AA==$AA==', 'scrypt$4$8$1$AA=='])('refuses the malformed %s', async (stored) => {
    expect(await verifyScrypt('anything', stored)).toBe(false);
  });

  it('a form nobody wrote is unknown', () => {
    expect(storedForm('plain$secret')).toBe('unknown');
    expect(storedForm('')).toBe('unknown');
  });
});
