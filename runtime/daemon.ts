/**
 * The process lifetime of a fleet daemon (`fleet agent start`, `fleet coordinator start`): it runs
 * until SIGTERM or SIGINT, then stops cleanly and exits 0. I/O shell over Node's `process`; it lives
 * in runtime/, the process shell the agent's and the coordinator's executables share.
 *
 * - The daemon holds one ref'd handle for its whole life. Services schedule their own timers on the
 *   clock, which unrefs them (a pending timer must not hold a test or a tool open by itself); without
 *   this handle a daemon waiting on nothing but such a timer — a reconnect backoff while the broker is
 *   down — would fall out of the event loop and Node would end it with code 13 (unsettled top-level
 *   await), silently, and the supervisor would restart the whole fleet in lockstep.
 * - A signal during start-up stops the service as soon as it is up.
 * - A stop is bounded (`stopTimeoutMs`): a hung stop is logged and the process exits 1.
 * - An uncaught exception or unhandled rejection is logged at fatal level and exits 1 without the
 *   clean stop, so that the next start counts it as the crash it was.
 * - After the stop, whatever still holds the event loop open is logged and the process exits anyway.
 */

/** The logger calls the lifetime makes (pino's signature). */
export interface DaemonLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  fatal(fields: object, msg: string): void;
}

/** Given to the service at start: how it ends the daemon itself. */
export interface DaemonControl {
  /** Stops the daemon as a signal would, then exits with `exitCode` (non-zero: a fatal condition). */
  shutdown(exitCode: number, reason: string): void;
}

export interface DaemonOptions {
  logger: DaemonLogger;
  /** Starts the service (after the signal handlers are in place) and returns how to stop it. */
  start(control: DaemonControl): Promise<() => Promise<void>>;
  /** Longest a stop may take before the process exits 1 anyway. Default 15 s (systemd's TimeoutStopSec is 20 s). */
  stopTimeoutMs?: number;
  /** How long after a clean stop open handles may keep the process up before it exits anyway. Default 3 s. */
  lingerMs?: number;
}

interface StopRequest {
  exitCode: number;
  reason: string;
  signal?: NodeJS.Signals;
}

/** Node's timers take at most a signed 32-bit delay; the handle only has to exist, never to fire. */
const KEEPALIVE_PERIOD_MS = 2 ** 31 - 1;

function describe(err: unknown): { err: string; stack?: string } {
  if (err instanceof Error) return err.stack !== undefined ? { err: err.message, stack: err.stack } : { err: err.message };
  return { err: String(err) };
}

/**
 * Runs a daemon until SIGTERM/SIGINT (exit code 0) or `control.shutdown(code)`. Resolves once the
 * service has stopped, with `process.exitCode` set; rejects (after removing its handlers) only when
 * the start itself fails, so the caller reports that error.
 */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const log = options.logger;
  const stopTimeoutMs = options.stopTimeoutMs ?? 15_000;
  const lingerMs = options.lingerMs ?? 3_000;
  const keepalive = setInterval(() => undefined, KEEPALIVE_PERIOD_MS);

  // Set from signal handlers and the service's own shutdown: read through a function, not narrowed.
  let requested = null as StopRequest | null;
  let wake: (() => void) | null = null;
  const request = (exitCode: number, reason: string, signal?: NodeJS.Signals): void => {
    if (requested) {
      if (signal) {
        log.warn({ signal }, 'second signal while stopping: exiting now');
        process.exit(1);
      }
      return;
    }
    requested = { exitCode, reason, ...(signal ? { signal } : {}) };
    wake?.();
  };
  const onSignal = (signal: NodeJS.Signals): void => request(0, 'signal', signal);
  const onFatal = (err: unknown, origin: string): void => {
    log.fatal({ ...describe(err), origin }, 'unexpected error; exiting without a clean stop');
    process.exit(1);
  };
  const onRejection = (reason: unknown): void => onFatal(reason, 'unhandledRejection');
  const detach = (): void => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('uncaughtException', onFatal);
    process.off('unhandledRejection', onRejection);
    clearInterval(keepalive);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onRejection);

  let stop: () => Promise<void>;
  try {
    stop = await options.start({ shutdown: (exitCode, reason) => request(exitCode, reason) });
  } catch (err) {
    detach();
    throw err;
  }
  const reason = await new Promise<StopRequest>((resolve) => {
    wake = () => resolve(requested!);
    if (requested) wake();
  });
  log.info({ ...(reason.signal ? { signal: reason.signal } : {}), reason: reason.reason, exitCode: reason.exitCode }, 'stopping');

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), stopTimeoutMs);
  });
  let exitCode = reason.exitCode;
  try {
    if ((await Promise.race([stop().then(() => 'stopped' as const), timedOut])) === 'timeout') {
      log.error({ stopTimeoutMs }, 'stop did not finish in time; exiting');
      process.exit(1);
    }
  } catch (err) {
    log.error(describe(err), 'stop failed');
    exitCode = 1;
  } finally {
    clearTimeout(timer);
  }
  detach();
  process.exitCode = exitCode;
  log.info({ exitCode }, 'stopped');
  // Everything is stopped: an open socket or a ref'd timer left behind is a leak to report, never a
  // reason to hang until the supervisor kills us. Unref'd, so a clean process exits at once.
  setTimeout(() => {
    log.warn({ lingerMs, handles: process.getActiveResourcesInfo() }, 'handles still open after the stop; exiting anyway');
    process.exit(exitCode);
  }, lingerMs).unref();
}
