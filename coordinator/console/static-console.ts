/**
 * Serves the built console (`npm run build` writes it to coordinator/dist/console-app/): index.html at `/` and the
 * hashed bundles under `/assets/`, from memory, gzipped when the client accepts it, with strong ETags.
 * Hashed assets are cached for a year (their name changes with their content); index.html is
 * revalidated every time, so a new build is picked up at the next load. Every answer carries a
 * content-security-policy that allows this origin only: no CDN, nothing inline, nothing fetched from
 * elsewhere. Without a build, `/` says how to make one. I/O shell (node:fs, node:http).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** Same origin only; styles set from script (CSSOM) are not inline styles and stay allowed. */
export const CONSOLE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const SECURITY_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt']);

interface StaticFile {
  body: Buffer;
  gzip: Buffer | undefined;
  etag: string;
  type: string;
  immutable: boolean;
}

/**
 * Where the build lives when nothing says otherwise: `dist/console-app` of the package this module
 * belongs to (coordinator/; `dist/console` there holds this folder's compiled modules).
 */
export function defaultConsoleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'dist', 'console-app');
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'console');
}

const NOT_BUILT = (dir: string): string =>
  `<!doctype html><meta charset="utf-8"><title>fleet console</title>` +
  `<p>The operator console is not built here (looked in ${dir.replace(/[<>&"]/g, '')}). Run <code>npm run build</code> ` +
  `in the repository, or point FLEET_CONSOLE_DIR at a build, and reload.</p>`;

export class StaticConsole {
  private constructor(
    readonly dir: string,
    private readonly files: ReadonlyMap<string, StaticFile>,
  ) {}

  /** Reads the build into memory (a few hundred KiB). A missing build is not an error: `/` explains. */
  static async load(dir: string = defaultConsoleDir()): Promise<StaticConsole> {
    const files = new Map<string, StaticFile>();
    if (existsSync(join(dir, 'index.html'))) {
      for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const full = join(entry.parentPath, entry.name);
        const path = '/' + relative(dir, full).split(sep).join('/');
        const ext = extname(path);
        const body = await readFile(full);
        const zipped = COMPRESSIBLE.has(ext) && body.length > 256 ? gzipSync(body, { level: 9 }) : undefined;
        files.set(path, {
          body,
          gzip: zipped && zipped.length < body.length ? zipped : undefined,
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
          type: TYPES[ext] ?? 'application/octet-stream',
          immutable: path.startsWith('/assets/'),
        });
      }
    }
    return new StaticConsole(dir, files);
  }

  get built(): boolean {
    return this.files.has('/index.html');
  }

  /** Whether `serve` answers `path` (without a build, `/` and `/index.html` explain how to make one). */
  has(path: string): boolean {
    if (!this.built) return path === '/' || path === '/index.html';
    return this.files.has(path === '/' ? '/index.html' : path);
  }

  /** Serves `path` (`/` is index.html); false when there is no such file (the caller answers 404). */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (!this.built) {
      if (path !== '/' && path !== '/index.html') return false;
      const body = NOT_BUILT(this.dir);
      res.writeHead(503, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    }
    const file = this.files.get(path === '/' ? '/index.html' : path);
    if (!file) return false;
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      'content-type': file.type,
      etag: file.etag,
      'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'accept-encoding',
    };
    if (etagMatches(req.headers['if-none-match'], file.etag)) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    const gzip = file.gzip && acceptsGzip(req.headers['accept-encoding']);
    const body = gzip ? file.gzip! : file.body;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
}

/** RFC 9110 §13.1.2: a list of entity tags, or `*`; weak comparison. */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [name, ...params] = part.trim().split(';');
    if (name?.trim().toLowerCase() !== 'gzip') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
