/**
 * A webhook receiver on 127.0.0.1 for tests: records every request (raw body, headers, when), checks
 * each signature as a real receiver would (webhook-signature.ts verifyWebhook) and answers what the
 * test says (200 by default; a status, or never).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, type SignatureCheck } from '../../coordinator/webhooks/webhook-signature.js';
import { WEBHOOK_HEADERS, WebhookEventSchema, type WebhookEvent } from '../../protocol/webhooks.js';

export interface Received {
  body: string;
  headers: IncomingMessage['headers'];
  signature: SignatureCheck;
  event: WebhookEvent | undefined;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** What to answer next: an HTTP status, or `hang` (never answer). */
  answer: (r: Received) => number | 'hang';
  close(): Promise<void>;
}

/** `nowMs`: the receiver's clock for the timestamp check (default real time). */
export async function startReceiver(secret: () => string, nowMs: () => number = () => Date.now(), path = '/hook'): Promise<Receiver> {
  const hanging: (() => void)[] = [];
  const receiver: Receiver = { url: '', received: [], answer: () => 200, close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = (name: string): string | undefined => {
        const v = req.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      const signature = verifyWebhook({
        secret: secret(),
        body,
        signature: header(WEBHOOK_HEADERS.signature),
        timestamp: header(WEBHOOK_HEADERS.timestamp),
        nowS: Math.floor(nowMs() / 1000),
      });
      const parsed = WebhookEventSchema.safeParse(JSON.parse(body) as unknown);
      const r: Received = { body, headers: req.headers, signature, event: parsed.success ? parsed.data : undefined };
      receiver.received.push(r);
      const answer = receiver.answer(r);
      if (answer === 'hang') {
        hanging.push(() => res.destroy());
        return;
      }
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 300 ? `receiver says ${answer}` : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  receiver.close = async () => {
    for (const h of hanging) h();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}
