/**
 * Health checks run on the trial slot before it is committed. I/O adapter.
 *
 * Each check is a command with a timeout; exit 0 passes, anything else (non-zero exit, signal,
 * timeout, cannot start) fails. Checks run one after another and stop at the first failure, like
 * Mender's state scripts. The simulator injects its own runner (its firmware behaviour decides).
 */
import { spawn } from 'node:child_process';

export interface HealthCheck {
  name: string;
  /** argv (run without a shell) or a string run by /bin/sh -c. */
  command: string[] | string;
  timeoutMs: number;
}

export type HealthResult = { ok: true } | { ok: false; check: string; detail: string };

/** The health-check seam. */
export interface HealthCheckRunner {
  run(checks: readonly HealthCheck[], signal: AbortSignal): Promise<HealthResult>;
}

const OUTPUT_LIMIT = 400;

/** Runs one command; resolves with null on success or a short reason on failure. */
function runOne(check: HealthCheck, signal: AbortSignal): Promise<string | null> {
  return new Promise((resolve) => {
    const [file, args] = typeof check.command === 'string' ? ['/bin/sh', ['-c', check.command]] : [check.command[0]!, check.command.slice(1)];
    let output = '';
    let done = false;
    const finish = (result: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => {
      if (output.length < OUTPUT_LIMIT) output += chunk.toString('utf8').slice(0, OUTPUT_LIMIT - output.length);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    // Health checks are the shell's business: a real timer is fine here (the clock seam governs the
    // trial window, not a subprocess's wall time).
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(`timed out after ${check.timeoutMs} ms`);
    }, check.timeoutMs);
    timer.unref();
    const onAbort = () => {
      child.kill('SIGKILL');
      finish('cancelled');
    };
    signal.addEventListener('abort', onAbort);
    child.on('error', (err) => finish(`cannot run: ${err.message}`));
    child.on('close', (code, sig) => {
      if (code === 0) finish(null);
      else finish(`${sig ? `killed by ${sig}` : `exit ${code}`}${output.trim() ? `: ${output.trim()}` : ''}`);
    });
  });
}

export class CommandHealthCheckRunner implements HealthCheckRunner {
  async run(checks: readonly HealthCheck[], signal: AbortSignal): Promise<HealthResult> {
    for (const check of checks) {
      const failure = await runOne(check, signal);
      if (failure !== null) return { ok: false, check: check.name, detail: `health check ${check.name}: ${failure}`.slice(0, 500) };
    }
    return { ok: true };
  }
}
