/**
 * The logger of a daemon started from the CLI: pino JSON lines on stdout (what journald and log
 * shippers want), or one readable line per entry when stdout is a terminal and pino-pretty is
 * installed (a development install; a device installs without it and keeps JSON). I/O shell.
 */
import { pino, type Logger } from 'pino';

export type LogFormat = 'json' | 'pretty' | 'auto';

/** A pino logger at `level` in `format` (`auto`: pretty on a terminal when available, else JSON). */
export async function cliLogger(level: string, format: LogFormat = 'auto', isTTY = Boolean(process.stdout.isTTY)): Promise<Logger> {
  if (format === 'json' || (format === 'auto' && !isTTY)) return pino({ level });
  try {
    const { default: pretty } = await import('pino-pretty');
    return pino({ level }, pretty({ colorize: isTTY, translateTime: 'HH:MM:ss', ignore: 'pid,hostname', sync: true }));
  } catch {
    // pino-pretty is a development dependency: without it, JSON.
    return pino({ level });
  }
}
