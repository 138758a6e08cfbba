/**
 * The admin API of a coordinator started as a child process, as a test calls it: the URL and token
 * from its data dir's `admin.json`, JSON in and out, a non-2xx answer thrown with its body.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type AdminApi = <T>(method: string, path: string, body?: unknown, raw?: Buffer) => Promise<T>;

export function adminApi(dataDir: string): AdminApi {
  const { url, token } = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string };
  return async <T>(method: string, path: string, body?: unknown, raw?: Buffer): Promise<T> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(raw ? { 'content-type': 'application/octet-stream' } : body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(raw ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}
