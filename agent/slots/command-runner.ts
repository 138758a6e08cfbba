/**
 * The process seam for the bootloader-backed slot backends (uboot, rauc, tryboot): fw_setenv, rauc and
 * reboot are spawned through a `CommandRunner`, so unit tests pass a recording fake and real-tool tests
 * pass `spawnRunner`. `spawnRunner` is the I/O shell; the helpers below are pure.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

/** One finished process. */
export interface CommandResult {
  /** Exit code; -1 when the process could not start, was killed by a signal or timed out. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Written to the process's stdin, which is then closed. */
  stdin?: string;
  /** Extra environment variables (merged over the agent's own). */
  env?: Record<string, string>;
  /** Kill the process after this long. Default 60 000 ms. */
  timeoutMs?: number;
  /** Sees stdout as it arrives (progress lines of `rauc install`). */
  onOutput?: (chunk: string) => void;
}

/** Runs `file` with `args` (no shell) and resolves when it exits; never rejects for a non-zero exit. */
export type CommandRunner = (file: string, args: readonly string[], options?: CommandOptions) => Promise<CommandResult>;

const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 4 * 1024 * 1024;

/** The real runner: `child_process.spawn`, bounded in time and in captured output. */
export const spawnRunner: CommandRunner = (file, args, options = {}) =>
  new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const child = spawn(file, [...args], {
      env: options.env ? { ...process.env, ...options.env } : process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const finish = (result: CommandResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    // A hung fw_setenv or rauc must not hang the agent: kill it and report a failure.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ code: -1, stdout, stderr: `${stderr}\ntimed out after ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` });
    }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += chunk;
      options.onOutput?.(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < MAX_OUTPUT) stderr += chunk;
    });
    child.on('error', (err) => finish({ code: -1, stdout, stderr: `${stderr}${err.message}` }));
    child.on('close', (code) => finish({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined); // EPIPE when the process exits before reading stdin
    child.stdin.end(options.stdin ?? '');
  });

/** A short, single-line description of a failed command for error messages. Pure. */
export function describeFailure(file: string, args: readonly string[], result: CommandResult): string {
  const output = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' | ');
  return `\`${[file, ...args].join(' ')}\` exited with ${result.code}${output ? `: ${output}` : ''}`;
}

/** What the shell injects into the bootloader-backed backends (uboot, rauc, tryboot). */
export interface SlotBackendDeps {
  /** Default: spawnRunner (real processes). */
  runner?: CommandRunner;
  /** A child logger for the slot backend; nothing is logged without one. */
  logger?: Logger;
}
