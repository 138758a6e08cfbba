/**
 * A small OpenAI-compatible chat-completions server for tests, on 127.0.0.1 port 0. Each request is
 * recorded and answered by the current behaviour: a content string, a refusal, a delay longer than the
 * client's timeout, or an HTTP error.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeBehaviour =
  | { kind: 'content'; content: string }
  | { kind: 'refusal'; refusal: string }
  | { kind: 'hang'; ms: number }
  | { kind: 'http'; status: number; message: string };

export interface RecordedRequest {
  path: string;
  body: {
    model: string;
    temperature?: number;
    messages: { role: string; content: string }[];
    response_format?: { type: string; json_schema?: { name: string; strict?: boolean; schema: unknown } };
    tools?: unknown;
  };
}

export class FakeOpenAiServer {
  readonly requests: RecordedRequest[] = [];
  behaviour: FakeBehaviour | ((req: RecordedRequest) => FakeBehaviour) = { kind: 'content', content: '{}' };
  private server: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  get baseURL(): string {
    const addr = this.server?.address() as AddressInfo;
    return `http://127.0.0.1:${addr.port}/v1`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rec: RecordedRequest = { path: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as RecordedRequest['body'] };
    this.requests.push(rec);
    const b = typeof this.behaviour === 'function' ? this.behaviour(rec) : this.behaviour;
    const send = (status: number, body: unknown) => {
      if (res.writableEnded || res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const completion = (message: Record<string, unknown>) => ({
      id: 'chatcmpl-fake',
      object: 'chat.completion',
      created: 0,
      model: rec.body.model,
      choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: null, ...message }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
    });
    switch (b.kind) {
      case 'content':
        send(200, completion({ content: b.content }));
        return;
      case 'refusal':
        send(200, completion({ refusal: b.refusal }));
        return;
      case 'hang': {
        const t = setTimeout(() => {
          this.timers.delete(t);
          send(200, completion({ content: '{}' }));
        }, b.ms);
        this.timers.add(t);
        return;
      }
      case 'http':
        send(b.status, { error: { message: b.message, type: 'server_error' } });
        return;
    }
  }
}
