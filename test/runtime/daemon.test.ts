/**
 * The daemon lifetime (runtime/daemon.ts) in real processes: alive on nothing but unref'd timers
 * until a signal, exit codes for signals, the service's own shutdown, fatal errors, a hung stop, a
 * leaked handle and a failed start.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnProcess, tsLoader, type RunningProcess } from '../support/processes.js';
import { waitFor } from '../support/wait-for.js';

const child = fileURLToPath(new URL('./daemon-child.ts', import.meta.url));
const running: RunningProcess[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop('SIGKILL');
});

function daemon(mode: string): RunningProcess {
  const p = spawnProcess(process.execPath, ['--import', tsLoader, child, mode]);
  running.push(p);
  return p;
}

const messages = (p: RunningProcess): string[] =>
  p.lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string }).msg);

describe('runDaemon', () => {
  it('keeps a process whose service waits on unref\'d timers alive until SIGTERM, then exits 0', { timeout: 30_000 }, async () => {
    const p = daemon('idle');
    await p.waitForLine(/"msg":"started"/);
    // Several rounds of the unref'd "backoff" after the start: the process did not fall out of its loop.
    const retries = () => messages(p).filter((m) => m === 'retrying').length;
    await p.waitForLine(/"msg":"retrying"/);
    await waitFor(() => retries() >= 5, 'five rounds of the unref\'d backoff');
    expect(p.exit).toBeUndefined();
    expect(await p.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(messages(p).slice(-3)).toEqual(['stopping', 'service stopped', 'stopped']);
  });

  it('exits 0 on SIGINT too, and a signal during the start stops the service once it is up', { timeout: 30_000 }, async () => {
    const p = daemon('slow-start');
    await p.waitForLine(/"msg":"starting"/);
    p.child.kill('SIGINT');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(messages(p)).toEqual(expect.arrayContaining(['started', 'stopping', 'service stopped', 'stopped']));
    expect(messages(p).indexOf('started')).toBeLessThan(messages(p).indexOf('stopping'));
  });

  it('ends with the code the service asks for', { timeout: 30_000 }, async () => {
    const p = daemon('shutdown');
    expect(await p.exited).toEqual({ code: 3, signal: null });
    expect(p.output()).toMatch(/"reason":"the service gave up","exitCode":3,"msg":"stopping"/);
  });

  it.each(['reject', 'throw'])('logs an unexpected error (%s) at fatal and exits 1 without the clean stop', { timeout: 30_000 }, async (mode) => {
    const p = daemon(mode);
    expect(await p.exited).toEqual({ code: 1, signal: null });
    const fatal = p.lines.filter((l) => l.includes('"level":60'));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(mode === 'reject' ? /nobody awaited this.*unhandledRejection/ : /thrown from a timer.*uncaughtException/);
    expect(messages(p)).not.toContain('service stopped');
  });

  it('exits 1 when the stop hangs past its bound', { timeout: 30_000 }, async () => {
    const p = daemon('hang');
    await p.waitForLine(/"msg":"started"/);
    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 1, signal: null });
    expect(messages(p)).toContain('stop did not finish in time; exiting');
  });

  it('says which handles a stop left open, and exits anyway', { timeout: 30_000 }, async () => {
    const p = daemon('leak');
    await p.waitForLine(/"msg":"started"/);
    p.child.kill('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.output()).toMatch(/"handles":\[[^\]]*"Timeout"[^\]]*\].*"msg":"handles still open after the stop; exiting anyway"/);
  });

  it('hands a failed start back to its caller and lets the process end', { timeout: 30_000 }, async () => {
    const p = daemon('start-fails');
    expect(await p.exited).toEqual({ code: 2, signal: null });
    expect(p.lines).toContain('error: cannot open the store');
  });
});
