/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), for the I-JSON subset our documents use. Pure.
 *
 * - Object members sorted by their names' UTF-16 code units (JavaScript's default string order).
 * - No whitespace. Strings serialised as ECMAScript JSON.stringify does (RFC 8785 §3.2.2.2).
 * - Numbers serialised by ECMAScript Number-to-String (RFC 8785 §3.2.2.3, what JSON.stringify does);
 *   NaN and ±Infinity are refused, as are undefined values, functions, symbols and bigints.
 */
import { FleetError } from '@fleet/protocol/errors';

export class CanonicalJsonError extends FleetError {
  constructor(message: string) {
    super('canonical-json', message);
  }
}

export function canonicalize(value: unknown): string {
  return serialize(value, '$');
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}

function serialize(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${path}: ${value} has no JSON form`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v, i) => serialize(v, `${path}[${i}]`)).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${serialize(v, `${path}.${k}`)}`).join(',')}}`;
    }
    case 'undefined':
    case 'function':
    case 'symbol':
    case 'bigint':
      throw new CanonicalJsonError(`${path}: a ${typeof value} has no JSON form`);
  }
  throw new CanonicalJsonError(`${path}: unsupported value`);
}
