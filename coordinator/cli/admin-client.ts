/**
 * The CLI's client for the admin API. Which coordinator and token it uses is resolved by
 * connection.ts (flags, environment, the local data dir's admin.json); errors name the source to fix.
 * I/O shell (fetch).
 */
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import { definedProps } from '@fleet/firmware/defined-props';
import { resolveConnection, unauthorizedMessage, type Connection, type ConnectionOptions } from './connection.js';

export type { ConnectionOptions } from './connection.js';

export class AdminApiError extends FleetError {
  readonly status: number;

  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

export class AdminClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    /** Where the URL and token came from, for error messages; default: given in code. */
    readonly origin: Pick<Connection, 'tokenFrom' | 'dataDir'> = { tokenFrom: token === undefined ? undefined : 'the caller', dataDir: undefined },
  ) {}

  /** Resolves the URL and token from options, environment and the data-dir file, in that order. */
  static resolve(opts: ConnectionOptions, env: Record<string, string | undefined> = process.env): AdminClient {
    const c = resolveConnection(opts, env);
    return new AdminClient(c.url, c.token, { tokenFrom: c.tokenFrom, dataDir: c.dataDir });
  }

  async request<T>(method: string, path: string, body?: unknown, init: { headers?: Record<string, string>; raw?: NonNullable<RequestInit['body']>; duplex?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    let payload: RequestInit['body'] | undefined = init.raw;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        ...definedProps({ body: payload }),
        ...(init.duplex ? { duplex: 'half' } : {}),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? errorMessage(err);
      throw new FleetError('unreachable', `cannot reach the coordinator at ${this.baseUrl} (${cause}); is it running? start it with \`fleet coordinator start\` or check --url`);
    }
    const text = await res.text();
    let data: unknown = undefined;
    if (text.length) {
      try {
        data = JSON.parse(text) as unknown;
      } catch {
        data = text;
      }
    }
    if (!res.ok) {
      const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      if (res.status === 401) {
        throw new AdminApiError(401, 'unauthorized', unauthorizedMessage({ url: this.baseUrl, tokenFrom: this.origin.tokenFrom }));
      }
      throw new AdminApiError(res.status, e?.code ?? `http-${res.status}`, e?.message ?? `the coordinator answered ${res.status} ${res.statusText}`);
    }
    return data as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body ?? {});
  }
}
