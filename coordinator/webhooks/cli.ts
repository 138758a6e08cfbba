/**
 * `fleet webhooks add|list|remove|test|deliveries` over the admin API (the admin role).
 *
 *   fleet webhooks add https://alerts.example.com/fleet --events gate.decided,rollback.started
 *   printf %s "$SECRET" | fleet webhooks add https://alerts.example.com/fleet --secret-stdin
 *   fleet webhooks test wh-1a2b3c4d5e          # sends a test event now; exit 2 when it was not delivered
 */
import type { Command } from 'commander';
import { FleetError } from '@fleet/protocol/errors';
import { definedProps } from '@fleet/firmware/defined-props';
import { SUBSCRIBABLE_EVENTS } from '@fleet/protocol/webhooks';
import { AdminClient, type ConnectionOptions } from '../cli/admin-client.js';
import { addConnectionOptions } from '../cli/device-commands.js';
import { ago, list, table } from '../cli/format.js';
import type { AttemptResult } from './webhook-dispatcher.js';
import type { DeliveryView, WebhookView } from './webhook-service.js';

/** Reads the whole of standard input (a secret piped in), without its final newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function lastDelivery(w: WebhookView): string {
  const d = w.lastDelivery;
  if (!d) return 'none yet';
  return `${d.eventType} ${d.status} ${ago(d.finishedAt ?? d.createdAt)} (${d.attempts} attempt${d.attempts === 1 ? '' : 's'}${d.lastError ? `; ${d.lastError}` : d.lastStatus !== null ? `; HTTP ${d.lastStatus}` : ''})`;
}

export function describeAttempt(r: AttemptResult): string {
  if (r.delivered) return `delivered: HTTP ${r.status ?? '?'} in ${r.latencyMs} ms`;
  return `not delivered: ${r.error ?? 'no answer'} (${r.latencyMs} ms)`;
}

export function registerWebhookCommands(program: Command): Command {
  const webhooks = program.command('webhooks').description('signed HTTP callbacks on gate decisions, aborts, completions and rollbacks');
  const client = (o: ConnectionOptions): AdminClient => AdminClient.resolve(o);

  addConnectionOptions(
    webhooks
      .command('add <url>')
      .description('add a webhook; prints its id and, when generated, its signing secret (shown once)')
      .option('--events <list>', `comma-separated events (default all: ${SUBSCRIBABLE_EVENTS.join(', ')})`, list)
      .option('--secret-stdin', 'read the signing secret (16+ characters) from standard input instead of generating one')
      .option('--description <text>', 'what it is for')
      .option('--json', 'machine-readable output'),
  ).action(async (url: string, opts: ConnectionOptions & { events?: string[]; secretStdin?: boolean; description?: string; json?: boolean }) => {
    const secret = opts.secretStdin ? await readStdin() : undefined;
    if (opts.secretStdin && !secret) throw new FleetError('invalid-input', '--secret-stdin read nothing: pipe the secret in, e.g. printf %s "$SECRET" | fleet webhooks add …');
    const res = await client(opts).post<{ webhook: WebhookView; secret: string }>('/v1/webhooks', {
      url,
      ...definedProps({ events: opts.events, secret, description: opts.description }),
    });
    if (opts.json) return console.log(JSON.stringify(secret !== undefined ? { webhook: res.webhook } : res, null, 2));
    console.log(`added webhook ${res.webhook.id}: ${res.webhook.url} (${res.webhook.events.join(', ')})`);
    if (secret === undefined) console.log(`signing secret (shown once; keep it with the receiver): ${res.secret}`);
  });

  addConnectionOptions(webhooks.command('list').description('webhooks with their last delivery').option('--json', 'machine-readable output')).action(
    async (opts: ConnectionOptions & { json?: boolean }) => {
      const res = await client(opts).get<{ webhooks: WebhookView[] }>('/v1/webhooks');
      if (opts.json) return console.log(JSON.stringify(res, null, 2));
      if (res.webhooks.length === 0) return console.log('no webhooks; add one with `fleet webhooks add <url>`');
      console.log(table(
        ['id', 'url', 'events', 'last delivery', 'pending', 'failed'],
        res.webhooks.map((w) => [w.id, w.url, w.events.join('\n'), lastDelivery(w), w.deliveries.pending, w.deliveries.failed]),
      ));
    },
  );

  addConnectionOptions(webhooks.command('remove <id>').description('remove a webhook and its delivery records')).action(async (id: string, opts: ConnectionOptions) => {
    await client(opts).request('DELETE', `/v1/webhooks/${encodeURIComponent(id)}`);
    console.log(`removed webhook ${id}`);
  });

  addConnectionOptions(webhooks.command('test <id>').description('send a test event now and show what the receiver answered').option('--json', 'machine-readable output')).action(
    async (id: string, opts: ConnectionOptions & { json?: boolean }) => {
      const { result } = await client(opts).post<{ result: AttemptResult }>(`/v1/webhooks/${encodeURIComponent(id)}/test`);
      if (opts.json) console.log(JSON.stringify(result, null, 2));
      else console.log(`webhook ${id}: ${describeAttempt(result)}`);
      if (!result.delivered) throw new FleetError('webhook-test-failed', `webhook ${id} did not take the test event (${result.error ?? 'no answer'}); check the URL and that the receiver answers 2xx`);
    },
  );

  addConnectionOptions(
    webhooks
      .command('deliveries <id>')
      .description('the newest deliveries of a webhook with every attempt')
      .option('--limit <n>', 'at most this many', '20')
      .option('--json', 'machine-readable output'),
  ).action(async (id: string, opts: ConnectionOptions & { limit: string; json?: boolean }) => {
    const res = await client(opts).get<{ deliveries: DeliveryView[] }>(`/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=${encodeURIComponent(opts.limit)}`);
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(table(
      ['delivery', 'event', 'status', 'attempts', 'created', 'next attempt', 'last answer'],
      res.deliveries.map((d) => [
        d.id,
        d.eventType,
        d.status,
        (d.attemptLog ?? []).map((a) => `${a.attempt}: ${a.status ?? '-'} ${a.latencyMs} ms${a.error ? ` ${a.error}` : ''}`).join('\n') || '0',
        ago(d.createdAt),
        d.nextAttemptAt !== null && d.status === 'pending' ? new Date(d.nextAttemptAt).toISOString().slice(11, 19) : '-',
        d.lastError ?? (d.lastStatus !== null ? `HTTP ${d.lastStatus}` : '-'),
      ]),
    ));
  });
  return webhooks;
}
