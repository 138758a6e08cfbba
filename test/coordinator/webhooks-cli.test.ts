/**
 * `fleet webhooks` as an operator runs it: the coordinator and every CLI call as child processes,
 * a receiver on 127.0.0.1 that checks each signature with the secret given on standard input.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fleetEntry, repoRoot, spawnFleet, tsLoader } from '../support/processes.js';
import { tempDir } from './helpers.js';
import { startReceiver } from './webhook-receiver.js';

const stops: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

/** One `fleet` command to completion, with `stdin` written to it. */
function fleet(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', tsLoader, fleetEntry, ...args], { cwd: repoRoot, env: { PATH: process.env['PATH'] ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('fleet webhooks', () => {
  it('adds with a secret from stdin, tests, lists the last delivery and removes', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const data = join(dir, 'data');
    const coordinator = spawnFleet(['coordinator', 'start', '--data-dir', data, '--mqtt-port', '0', '--http-port', '0', '--log-format', 'json', '--log-level', 'warn']);
    stops.push(() => coordinator.stop());
    await coordinator.waitForLine(/fleet coordinator \(development\)/, 60_000);
    const secret = 'cli-webhook-secret-0123456789abcdef';
    const receiver = await startReceiver(() => secret);
    stops.push(() => receiver.close());
    const dd = ['--data-dir', data];

    const refused = await fleet(['webhooks', 'add', 'ftp://example.com/hook', ...dd]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^error \[invalid-input\]: webhook URL must be http:\/\/ or https:\/\//)]);

    const added = await fleet(['webhooks', 'add', receiver.url, '--secret-stdin', '--events', 'gate.decided,rollback.finished', ...dd], `${secret}\n`);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    const [, id] = /^added webhook (wh-[0-9a-f]+): /.exec(added.stdout) ?? [];
    expect(id).toBeDefined();
    // A secret the operator chose is never printed back.
    expect(added.stdout).not.toContain(secret);
    expect((await fleet(['webhooks', 'list', ...dd])).stdout).toMatch(new RegExp(`${id!}[\\s\\S]*none yet`));

    const ok = await fleet(['webhooks', 'test', id!, ...dd]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^webhook ${id!}: delivered: HTTP 200 in \\d+ ms`));
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]!.signature).toEqual({ ok: true });
    expect(receiver.received[0]!.event).toMatchObject({ type: 'webhook.test', webhookId: id });

    receiver.answer = () => 500;
    const bad = await fleet(['webhooks', 'test', id!, ...dd]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toMatch(/not delivered: HTTP 500: receiver says 500/);
    expect(bad.stderr).toMatch(/^error \[webhook-test-failed\]: .*receiver answers 2xx/);
    const listed = JSON.parse((await fleet(['webhooks', 'list', '--json', ...dd])).stdout) as { webhooks: { id: string; events: string[]; deliveries: Record<string, number>; lastDelivery: { status: string; lastStatus: number } }[] };
    expect(listed.webhooks).toMatchObject([{ id, events: ['gate.decided', 'rollback.finished'], deliveries: { delivered: 1, failed: 1, pending: 0 }, lastDelivery: { status: 'failed', lastStatus: 500 } }]);
    expect((await fleet(['webhooks', 'deliveries', id!, ...dd])).stdout).toMatch(/webhook\.test[\s\S]*failed[\s\S]*1: 500/);

    expect((await fleet(['webhooks', 'remove', id!, ...dd])).stdout).toMatch(`removed webhook ${id!}`);
    expect((await fleet(['webhooks', 'list', ...dd])).stdout).toMatch(/no webhooks/);
    const gone = await fleet(['webhooks', 'test', id!, ...dd]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/no webhook .*fleet webhooks list/);
    expect(await coordinator.stop()).toEqual({ code: 0, signal: null });
  });
});
