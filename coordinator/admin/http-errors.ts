/**
 * Errors the admin API answers with, and the HTTP status of every FleetError code. A route handler
 * throws one of these (or any FleetError); the server turns it into `{error: {code, message}}` with
 * the status from {@link statusOf}. Pure.
 */
import { FleetError } from '@fleet/protocol/errors';

/** An error with an HTTP status; route handlers throw these (or any FleetError). */
export class HttpError extends FleetError {
  readonly status: number;
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(code, message, options);
    this.status = status;
    this.headers = options?.headers ?? {};
  }
}

export class NotFoundError extends HttpError {
  constructor(message: string) {
    super(404, 'not-found', message);
  }
}

/** No credentials, or credentials that name nobody: 401. */
export class UnauthorizedError extends HttpError {
  constructor(message: string) {
    super(401, 'unauthorized', message);
  }
}

/** Authenticated, but the role does not allow it: 403 naming the role needed and the caller's. */
export class ForbiddenError extends HttpError {
  constructor(message: string) {
    super(403, 'forbidden', message);
  }
}

/** Maps FleetError codes that are not HttpErrors to statuses. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  'invalid-input': 400,
  'unsupported-version': 400,
  'invalid-topic': 400,
  'not-found': 404,
  conflict: 409,
  'no-eligible-devices': 409,
  'artifact-exists': 409,
  'artifact-damaged': 409,
  'credentials-exist': 409,
  'user-exists': 409,
  'builtin-user': 409,
  'invalid-action': 409,
  'already-paused': 409,
  'not-paused': 409,
  paused: 409,
  'nothing-to-approve': 409,
  stopped: 503,
  busy: 503,
  'broker-accounts': 502,
  'broker-unreachable': 503,
  'invalid-transition': 409,
  unauthorized: 401,
  forbidden: 403,
  csrf: 403,
};

/** The HTTP status for an error a handler threw; undefined for an unexpected (non-Fleet) error. */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof HttpError) return err.status;
  if (err instanceof FleetError) return STATUS_BY_CODE[err.code] ?? 400;
  return undefined;
}
