/**
 * Daemons as real processes in tests: the `fleet` CLI (run from the TypeScript sources through the
 * test loader, so a test never runs a stale build) or any other command, with its output kept line by
 * line, a bounded wait for a line, and a kill that a test registers for cleanup. Also a free loopback
 * port for daemons that must come back on the same port after a restart.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const tsLoader = fileURLToPath(new URL('./register-ts.js', import.meta.url));
export const fleetEntry = join(repoRoot, 'cli/fleet.ts');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Every line written so far, stdout and stderr interleaved as they arrived. */
  readonly lines: string[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** The exit, once it happened (undefined while running). */
  readonly exit: Exit | undefined;
  /** Resolves with the first line (already written or still to come) matching `pattern`; throws after `timeoutMs`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends a signal (default SIGTERM) and resolves with the exit, SIGKILLing after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
  /** The output so far, for assertion messages. */
  output(): string;
}

export interface SpawnOptions {
  cwd?: string;
  /** Added to a minimal environment (PATH only), so the host's FLEET_* never leak into a test. */
  env?: Record<string, string>;
  /**
   * Start it as the leader of a new process group, so a test can end it together with everything it
   * started in the background: `process.kill(-pid, 'SIGKILL')`.
   */
  detached?: boolean;
  /** Written to the process's stdin, which is then closed (default: stdin is /dev/null). */
  input?: string;
}

/** Starts `command args` and follows its output. */
export function spawnProcess(command: string, args: readonly string[], options: SpawnOptions = {}): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: { PATH: process.env['PATH'] ?? '', ...options.env },
    stdio: [options.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    ...(options.detached ? { detached: true } : {}),
  }) as ChildProcessByStdio<Writable | null, Readable, Readable>;
  if (options.input !== undefined) {
    // A child that exits without reading its input is the test's business, not an EPIPE crash.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
  }
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void }> = [];
  const onLine = (line: string): void => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      for (const p of parts) onLine(p);
    });
    stream.on('end', () => {
      if (rest) onLine(rest);
      rest = '';
    });
  }
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const output = (): string => lines.join('\n');
  return {
    child,
    pid: child.pid ?? -1,
    lines,
    exited,
    get exit() {
      return exit;
    },
    output,
    waitForLine(pattern, timeoutMs = 20_000) {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from ${command}${exit ? ` (exited ${JSON.stringify(exit)})` : ''}; output:\n${output().slice(-4000)}`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (exit) return exit;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Runs the `fleet` CLI from source in its own process. */
export function spawnFleet(args: readonly string[], options: SpawnOptions = {}): RunningProcess {
  return spawnProcess(process.execPath, ['--import', tsLoader, fleetEntry, ...args], options);
}

/** A port free on 127.0.0.1 right now (for daemons that must restart on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
