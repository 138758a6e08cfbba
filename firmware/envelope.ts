/**
 * Signing and signature checking of TUF-style envelopes. Pure apart from node:crypto.
 *
 * A signature is Ed25519 over the RFC 8785 canonical JSON of `signed`. Verification counts valid
 * signatures from distinct keys in the trust store and compares them with the threshold.
 */
import { sign as edSign, verify as edVerify } from 'node:crypto';
import type { SignedEnvelope, Signature } from '@fleet/protocol/signed';
import type { VerifyReason } from '@fleet/protocol/reasons';
import { canonicalBytes } from './canonical-json.js';
import type { SigningKey } from './keys.js';
import type { TrustStore } from './trust-store.js';
import { errorMessage } from '@fleet/protocol/errors';

export function signDocument<T extends object>(signed: T, keys: readonly SigningKey[]): SignedEnvelope<T> {
  const bytes = canonicalBytes(signed);
  const signatures: Signature[] = keys.map((k) => ({
    keyid: k.keyid,
    sig: edSign(null, bytes, k.privateKey).toString('base64'),
  }));
  return { signed, signatures };
}

/** Adds signatures by more keys (threshold signing, key rotation). */
export function addSignatures<T extends object>(envelope: SignedEnvelope<T>, keys: readonly SigningKey[]): SignedEnvelope<T> {
  const extra = signDocument(envelope.signed, keys).signatures;
  const seen = new Set(envelope.signatures.map((s) => s.keyid));
  return { signed: envelope.signed, signatures: [...envelope.signatures, ...extra.filter((s) => !seen.has(s.keyid))] };
}

export type SignatureCheck =
  | { ok: true; validKeyIds: string[] }
  | { ok: false; reason: Extract<VerifyReason, 'unknown-key' | 'bad-signature' | 'below-threshold' | 'malformed'>; detail: string };

export function checkSignatures(signed: unknown, signatures: readonly Signature[], trust: TrustStore): SignatureCheck {
  let bytes: Buffer;
  try {
    bytes = canonicalBytes(signed);
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: errorMessage(err) };
  }
  const valid = new Set<string>();
  let known = 0;
  for (const s of signatures) {
    const key = trust.keys.get(s.keyid);
    if (!key) continue;
    known++;
    let good: boolean;
    try {
      good = edVerify(null, bytes, key.publicKey, Buffer.from(s.sig, 'base64'));
    } catch {
      good = false;
    }
    if (good) valid.add(s.keyid);
  }
  if (known === 0) {
    return { ok: false, reason: 'unknown-key', detail: 'no signature is by a key in the trust store' };
  }
  if (valid.size === 0) {
    return { ok: false, reason: 'bad-signature', detail: 'signatures by trusted keys do not verify: the document was altered or mis-signed' };
  }
  if (valid.size < trust.threshold) {
    return {
      ok: false,
      reason: 'below-threshold',
      detail: `${valid.size} valid signature(s) from distinct trusted keys, ${trust.threshold} required`,
    };
  }
  return { ok: true, validKeyIds: [...valid] };
}
