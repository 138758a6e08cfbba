/**
 * How the `fleet` and `fleet-agent` executables report a failed command: one line on stderr that says what went wrong,
 * never a stack trace (set FLEET_DEBUG=1 for one). FleetErrors carry their code and advice; a file
 * that cannot be read names the file; anything else is labelled unexpected. Pure.
 */
import { FleetError, errorMessage } from '@fleet/protocol/errors';

/** What Node's fs and net errors carry (`ENOENT`, `open`, the path; `EADDRINUSE`, the port). */
interface SystemErrorLike {
  code?: unknown;
  syscall?: unknown;
  path?: unknown;
  address?: unknown;
  port?: unknown;
  message?: unknown;
}

const FILE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
};

function describeSystemError(sys: SystemErrorLike, code: string): string {
  if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL') {
    const where = typeof sys.port === 'number' ? ` ${typeof sys.address === 'string' ? sys.address : ''}:${sys.port}` : '';
    return `cannot listen on${where}: ${code === 'EADDRINUSE' ? 'another process is using that port; stop it or choose another port' : 'no such address on this machine'}`;
  }
  const what = FILE_ERRORS[code] ?? (typeof sys.message === 'string' ? sys.message : code);
  if (typeof sys.path !== 'string') return what;
  const verb = ['open', 'read', 'stat', 'scandir', 'lstat'].includes(String(sys.syscall)) ? 'cannot read' : 'cannot write';
  return `${verb} ${sys.path}: ${what}; check the path and its permissions`;
}

/** Exit status of a failed command: 2 when the operator can fix it (a FleetError, a bad path), 1 otherwise. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof FleetError) return 2;
  const code = (err as SystemErrorLike | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? 2 : 1;
}

/** The line (or, with `debug`, the line and the stack) to print for a command that threw `err`. */
export function describeCliError(err: unknown, debug = false): string {
  const stack = debug && err instanceof Error && err.stack ? `\n${err.stack}` : '';
  if (err instanceof FleetError) return `error [${err.code}]: ${err.message}${stack}`;
  const sys = (typeof err === 'object' && err !== null ? err : {}) as SystemErrorLike;
  if (typeof sys.code === 'string' && /^E[A-Z]+$/.test(sys.code)) {
    return `error [${sys.code}]: ${describeSystemError(sys, sys.code)}${stack}`;
  }
  const message = errorMessage(err);
  return `error: ${message.split('\n')[0] ?? message} (unexpected; rerun with FLEET_DEBUG=1 for the stack trace)${stack}`;
}
