/**
 * The CLI's client for the admin API. Finds the coordinator from `--url`/FLEET_URL and
 * `--token`/FLEET_TOKEN, or from the file a development coordinator writes into its data directory
 * (`--data-dir`, FLEET_DATA_DIR, default `.fleet`). Errors say what to do. I/O shell (fetch).
 */
import { readFileSync } from 'node:fs';
import { FleetError, errorMessage } from '../../protocol/errors.js';
import { adminFilePath, DEFAULT_DATA_DIR } from '../config.js';
import { definedProps } from '../../firmware/defined-props.js';

export interface ConnectionOptions {
  url?: string;
  token?: string;
  dataDir?: string;
}

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
  ) {}

  /** Resolves the URL and token from options, environment and the data-dir file, in that order. */
  static resolve(opts: ConnectionOptions, env: Record<string, string | undefined> = process.env): AdminClient {
    let url = opts.url ?? env['FLEET_URL'];
    let token = opts.token ?? env['FLEET_TOKEN'];
    if (url === undefined || token === undefined) {
      const dataDir = opts.dataDir ?? env['FLEET_DATA_DIR'] ?? DEFAULT_DATA_DIR;
      try {
        const file = JSON.parse(readFileSync(adminFilePath(dataDir), 'utf8')) as { url?: string; token?: string };
        url ??= file.url;
        token ??= file.token;
      } catch {
        // No local coordinator file: fine when --url/--token are given.
      }
    }
    if (url === undefined) {
      throw new FleetError(
        'no-coordinator',
        'no coordinator to talk to: start one with `fleet coordinator start`, or pass --url (FLEET_URL) and --token (FLEET_TOKEN), or --data-dir of a local coordinator',
      );
    }
    return new AdminClient(url.replace(/\/$/, ''), token);
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
        throw new AdminApiError(401, 'unauthorized', e?.message ?? 'operator token missing or wrong: set FLEET_TOKEN or pass --token');
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
