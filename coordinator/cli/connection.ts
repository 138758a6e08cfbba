/**
 * Which coordinator the operator CLI talks to, and where each setting came from: `--url`/FLEET_URL
 * and `--token`/FLEET_TOKEN, else the `admin.json` a development coordinator writes into its data
 * directory (`--data-dir`, FLEET_DATA_DIR, default `.fleet` in the working directory). Knowing the
 * source lets an error name the flag, variable or file to fix. Pure apart from reading that file.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { FleetError } from '@fleet/protocol/errors';
import { adminFilePath, DEFAULT_DATA_DIR } from '../config.js';

export interface ConnectionOptions {
  url?: string;
  token?: string;
  dataDir?: string;
}

/** A resolved coordinator: its admin URL, the operator token, and where each came from. */
export interface Connection {
  url: string;
  token: string | undefined;
  /** `--url`, `FLEET_URL` or the admin file's path. */
  urlFrom: string;
  /** `--token`, `FLEET_TOKEN`, the admin file's path, or undefined when there is no token. */
  tokenFrom: string | undefined;
  /** The local data directory whose admin file was read (absolute), if one was. */
  dataDir: string | undefined;
}

interface AdminFileContent {
  url?: string;
  token?: string;
}

function readAdminFile(path: string): AdminFileContent | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as AdminFileContent;
  } catch {
    return undefined;
  }
}

/**
 * An admin URL the CLI can fetch: http(s) with a host. `localhost:8080` parses as a URL with the
 * scheme `localhost:`, which fetch then refuses with a bare "fetch failed"; say what is missing.
 */
export function checkAdminUrl(url: string, from: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !['http:', 'https:'].includes(parsed.protocol) || parsed.host === '') {
    const guess = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? '' : `: use http://${url}`;
    throw new FleetError(
      'invalid-url',
      `${from} ${JSON.stringify(url)} is not an http:// or https:// URL of a coordinator${guess || ' (e.g. http://127.0.0.1:8080)'}`,
    );
  }
  return url.replace(/\/+$/, '');
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** Resolves the connection from options, then the environment, then the data-dir file. */
export function resolveConnection(opts: ConnectionOptions, env: Record<string, string | undefined> = process.env): Connection {
  let url: string | undefined;
  let urlFrom = '';
  if (opts.url !== undefined) [url, urlFrom] = [opts.url, '--url'];
  else if (env['FLEET_URL']) [url, urlFrom] = [env['FLEET_URL'], 'FLEET_URL'];
  let token: string | undefined;
  let tokenFrom: string | undefined;
  if (opts.token !== undefined) [token, tokenFrom] = [opts.token, '--token'];
  else if (env['FLEET_TOKEN']) [token, tokenFrom] = [env['FLEET_TOKEN'], 'FLEET_TOKEN'];

  let dataDir: string | undefined;
  if (url === undefined || token === undefined) {
    const dir = resolve(opts.dataDir ?? env['FLEET_DATA_DIR'] ?? DEFAULT_DATA_DIR);
    const path = adminFilePath(dir);
    const file = readAdminFile(path);
    if (file?.url !== undefined && url === undefined) [url, urlFrom, dataDir] = [file.url, path, dir];
    // The file's token goes only to the file's own coordinator, never to another --url.
    if (url !== undefined && file?.token !== undefined && token === undefined && file.url !== undefined && sameOrigin(file.url, url)) {
      [token, tokenFrom, dataDir] = [file.token, path, dir];
    }
    if (url === undefined) {
      const how = opts.dataDir !== undefined ? '--data-dir' : env['FLEET_DATA_DIR'] ? 'FLEET_DATA_DIR' : `default data dir ${DEFAULT_DATA_DIR}`;
      throw new FleetError(
        'no-coordinator',
        `no coordinator found at ${path} (${how}); start one with \`fleet coordinator start\`, or point at one: ` +
          '--data-dir <its data dir> (FLEET_DATA_DIR) on the same machine, else --url and --token (FLEET_URL, FLEET_TOKEN)',
      );
    }
  }
  return { url: checkAdminUrl(url, urlFrom === '--url' || urlFrom === 'FLEET_URL' ? urlFrom : `the url in ${urlFrom}`), token, urlFrom, tokenFrom, dataDir };
}

/** The message for a 401: which token was refused, where it came from, and where the right one is. */
export function unauthorizedMessage(c: Pick<Connection, 'url' | 'tokenFrom'>): string {
  const where =
    'the token the coordinator was started with (FLEET_ADMIN_TOKEN on its host, or "token" in its <data-dir>/admin.json), or your own API token (an admin issues one with `fleet users token <name>`)';
  if (c.tokenFrom === undefined) return `the coordinator at ${c.url} needs an operator token: pass --token or set FLEET_TOKEN to ${where}`;
  return `the coordinator at ${c.url} refused the operator token from ${c.tokenFrom}: use ${where}`;
}
