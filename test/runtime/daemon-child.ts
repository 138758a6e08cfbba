/**
 * A minimal daemon under runDaemon, for the process tests of the lifetime itself. Argument: what the
 * service does (see daemon.test.ts). Logs pino JSON on stdout.
 */
import { pino } from 'pino';
import { runDaemon } from '../../runtime/daemon.js';
import { errorMessage } from '../../protocol/errors.js';

const mode = process.argv[2] ?? 'idle';
const logger = pino({ level: 'info' });

try {
  await runDaemon({
    logger,
    stopTimeoutMs: 500,
    lingerMs: 500,
    async start(control) {
      logger.info({ mode }, 'starting');
      if (mode === 'start-fails') throw new Error('cannot open the store');
      if (mode === 'slow-start') await new Promise((resolve) => setTimeout(resolve, 1_500));
      // What a service waiting on its backoff holds: one unref'd timer, nothing else.
      const backoff = setInterval(() => logger.info('retrying'), 100);
      backoff.unref();
      if (mode === 'shutdown') setTimeout(() => control.shutdown(3, 'the service gave up'), 200).unref();
      if (mode === 'reject') setTimeout(() => void Promise.reject(new Error('nobody awaited this')), 200).unref();
      if (mode === 'throw') {
        setTimeout(() => {
          throw new Error('thrown from a timer');
        }, 200).unref();
      }
      logger.info('started');
      return async () => {
        clearInterval(backoff);
        logger.info('service stopped');
        if (mode === 'hang') await new Promise(() => undefined);
        if (mode === 'leak') setInterval(() => undefined, 1_000);
      };
    },
  });
} catch (err) {
  console.error(`error: ${errorMessage(err)}`);
  process.exitCode = 2;
}
