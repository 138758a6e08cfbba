/**
 * Starting and talking to a benchmark child process over IPC. I/O shell.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpuProfileArgv } from '../cpu-profile.js';

export interface Child {
  proc: ChildProcess;
  /** Sends a command and resolves with the first reply of the given type. */
  request<T>(cmd: Record<string, unknown>, replyType: string, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/** Forks `modulePath` (a compiled .js file) and waits for its `{type:'ready'}` message. */
export async function startChild(modulePath: string, args: string[] = [], timeoutMs = 60_000): Promise<{ child: Child; ready: Record<string, unknown> }> {
  const proc = fork(modulePath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc', ...cpuProfileArgv()] });
  const waitFor = <T>(type: string, ms: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        proc.off('message', onMessage);
        proc.off('exit', onExit);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`child ${modulePath} sent no ${type} within ${ms} ms`));
      }, ms);
      const onMessage = (msg: { type?: string }): void => {
        if (msg.type !== type) return;
        done();
        resolve(msg as T);
      };
      const onExit = (code: number | null): void => {
        done();
        reject(new Error(`child ${modulePath} exited with ${String(code)} before ${type}`));
      };
      proc.on('message', onMessage);
      proc.on('exit', onExit);
    });
  const ready = await waitFor<Record<string, unknown>>('ready', timeoutMs);
  const child: Child = {
    proc,
    request<T>(cmd: Record<string, unknown>, replyType: string, ms = 120_000): Promise<T> {
      const reply = waitFor<T>(replyType, ms);
      proc.send(cmd);
      return reply;
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.send({ cmd: 'stop' });
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
  return { child, ready };
}
