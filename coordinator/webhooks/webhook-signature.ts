/**
 * Signing webhook deliveries, and checking a signature the way a receiver should: HMAC-SHA256 with the
 * webhook's secret over `${timestamp}.${raw body}`, sent as `X-Fleet-Signature: sha256=<hex>` beside
 * `X-Fleet-Timestamp`. The timestamp is inside the signed bytes, so a receiver that refuses timestamps
 * older than its tolerance (5 minutes by default) and remembers the event ids it saw within that window
 * refuses a replayed delivery. Pure (node:crypto).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** `sha256=<hex>` for a body signed at `timestampS` (seconds since the epoch). */
export function signWebhook(secret: string, timestampS: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampS}.${body}`, 'utf8').digest('hex')}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'mismatch' | 'too-old' | 'in-the-future' };

/**
 * What a receiver does with a delivery: the signature must match the raw body (the bytes received,
 * before any JSON parsing) and the timestamp, and the timestamp must be within `toleranceS` of `nowS`.
 */
export function verifyWebhook(o: {
  secret: string;
  body: string;
  signature: string | undefined;
  timestamp: string | undefined;
  nowS: number;
  toleranceS?: number;
}): SignatureCheck {
  if (o.signature === undefined || o.timestamp === undefined) return { ok: false, reason: 'missing' };
  if (!/^\d{1,12}$/.test(o.timestamp) || !/^sha256=[0-9a-f]{64}$/.test(o.signature)) return { ok: false, reason: 'malformed' };
  const ts = Number(o.timestamp);
  const expected = Buffer.from(signWebhook(o.secret, ts, o.body));
  const given = Buffer.from(o.signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'mismatch' };
  const tolerance = o.toleranceS ?? 300;
  if (ts < o.nowS - tolerance) return { ok: false, reason: 'too-old' };
  if (ts > o.nowS + tolerance) return { ok: false, reason: 'in-the-future' };
  return { ok: true };
}
