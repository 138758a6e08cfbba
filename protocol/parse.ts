/**
 * Parsing at the edge: bytes in, a typed message or a precise error out. Never throws. Pure.
 */
import type { z } from 'zod';
import type { FleetError} from './errors.js';
import { UnsupportedVersionError, ValidationError, errorMessage } from './errors.js';
import { PROTOCOL_VERSION } from './signed.js';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: FleetError };

/** Formats zod issues as `path: message` strings an operator can act on. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
}

/**
 * Parses an already-decoded value with a schema; unknown versions get their own error. `versions`:
 * the values of `v` the schema speaks (default the protocol version; a file format may speak several).
 */
export function parseValue<S extends z.ZodType>(schema: S, value: unknown, what: string, versions: readonly unknown[] = [PROTOCOL_VERSION]): ParseResult<z.infer<S>> {
  if (typeof value === 'object' && value !== null && 'v' in value) {
    const v = (value).v;
    if (!versions.includes(v)) return { ok: false, error: new UnsupportedVersionError(what, v) };
  }
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: new ValidationError(what, formatIssues(result.error)) };
}

/** Parses a JSON payload (Buffer or string) with a schema. */
export function parsePayload<S extends z.ZodType>(
  schema: S,
  payload: Uint8Array | string,
  what: string,
  versions?: readonly unknown[],
): ParseResult<z.infer<S>> {
  let value: unknown;
  try {
    // A view, not Buffer.from(payload): that would copy every message's bytes first.
    const text = typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: new ValidationError(what, [`not JSON: ${errorMessage(err)}`]) };
  }
  return parseValue(schema, value, what, versions);
}

/** Serialises a message for the wire. */
export function encodeMessage(message: unknown): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}
