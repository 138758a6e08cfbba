/**
 * The admin API from the browser: JSON in and out, the session cookie sent by the browser itself, and
 * the CSRF token the session answer gave on every request that changes something. Errors become
 * ApiError with the server's code and message, which the pages show as they are.
 */
import type { Session } from './types.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | undefined;
/** Called with every 401: the session ended (expired, logged out elsewhere). */
let onUnauthorized: () => void = () => undefined;

export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

export async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch {
    throw new ApiError(0, 'unreachable', 'the coordinator does not answer; is it running?');
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401 && path !== '/v1/session') onUnauthorized();
    throw new ApiError(res.status, err?.code ?? `http-${res.status}`, err?.message ?? `${res.status} ${res.statusText}`);
  }
  return data as T;
}

/** Logs in with a name and password, or with an API token. */
export async function login(credentials: { username: string; password: string } | { token: string }): Promise<Session> {
  const session = await call<Session>('POST', '/v1/session', credentials);
  csrfToken = session.csrfToken;
  return session;
}

/** The current session, or null when there is none. */
export async function currentSession(): Promise<Session | null> {
  try {
    const session = await call<Session>('GET', '/v1/session');
    csrfToken = session.csrfToken;
    return session;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function logout(): Promise<void> {
  try {
    await call('DELETE', '/v1/session');
  } finally {
    csrfToken = undefined;
  }
}

export const enc = encodeURIComponent;
