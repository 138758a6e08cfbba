/**
 * The load balancer in front of coordinator replicas, as a test runs it on loopback: admin API calls go
 * to whichever replica says it leads (GET /v1/cluster), artifact downloads to the replicas in turn
 * (any replica serves any image), and a replica that does not answer is skipped. One URL for the
 * CLI, the simulator and devices' downloads, as `--public-url` in production.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LeaderProxy {
  url: string;
  /** Downloads served, by replica URL. */
  downloads: Map<string, number>;
  close(): Promise<void>;
}

async function leaderOf(replicas: readonly string[], token: string): Promise<string | undefined> {
  for (const r of replicas) {
    try {
      const res = await fetch(`${r}/v1/cluster`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) });
      const v = (await res.json()) as { role?: string };
      if (v.role === 'leader') return r;
    } catch {
      // down: try the next
    }
  }
  return undefined;
}

/**
 * Sends the request to `target` and pipes its answer back; false when it did not answer (the next
 * replica may). A replica that dies in the middle of an answer (a download, killed by the test) has the
 * caller's connection reset, as a real balancer does: piping alone would leave the caller waiting for
 * the rest of a body that never comes (an agent until its idle timeout, fetch for 300 s).
 */
function forward(target: string, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const u = new URL(req.url ?? '/', target);
    let answered = false;
    const out = request(u, { method: req.method, headers: { ...req.headers, host: u.host } }, (up) => {
      answered = true;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('error', () => undefined);
      up.on('close', () => {
        if (!up.complete) res.destroy();
        resolve(true);
      });
    });
    out.on('error', () => {
      if (answered) res.destroy();
      resolve(answered);
    });
    out.end(body);
  });
}

/** Starts the proxy; `replicas()` gives the replicas' admin URLs at each request (they change on restart). */
export async function startLeaderProxy(replicas: () => readonly string[], token: string): Promise<LeaderProxy> {
  const downloads = new Map<string, number>();
  let turn = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const all = replicas();
        const isDownload = (req.url ?? '').startsWith('/artifacts/');
        const order = isDownload ? all.map((_, i) => all[(turn + i) % all.length]!) : [await leaderOf(all, token)].filter((r): r is string => r !== undefined);
        if (isDownload) turn++;
        for (const target of order) {
          if (await forward(target, req, body, res)) {
            if (isDownload) downloads.set(target, (downloads.get(target) ?? 0) + 1);
            return;
          }
        }
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ error: { code: 'no-leader', message: 'no replica answers as leader' } }));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    downloads,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
