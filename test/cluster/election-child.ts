/**
 * A process that contends for leadership and says so on stdout: `elected <term>`, `demoted <term>
 * <reason>`. The election tests SIGKILL and SIGSTOP it as the holder of the lock.
 * Usage: election-child.ts <postgres-url> <replica-id> <lease-ms>
 */
import { pino } from 'pino';
import { systemClock } from '@fleet/protocol/clock';
import { LeaderElection } from '../../coordinator/cluster/leader-election.js';

const [url, replicaId, lease] = process.argv.slice(2);
if (!url || !replicaId) throw new Error('usage: election-child.ts <postgres-url> <replica-id> [lease-ms]');
const election = new LeaderElection({
  url,
  replicaId,
  adminUrl: () => `http://127.0.0.1:1/${replicaId}`,
  onElected: (term) => {
    process.stdout.write(`elected ${term}\n`);
    return Promise.resolve();
  },
  onDemoted: (term, reason) => process.stdout.write(`demoted ${term} ${reason}\n`),
  logger: pino({ level: 'warn' }),
  timers: systemClock,
  retryMs: 200,
  leaseMs: Number(lease ?? 10_000),
});
election.start();
// The election's timers are unref'd (a coordinator's listeners keep it alive): this process has none.
const alive = setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => {
  clearInterval(alive);
  void election.stop().then(() => process.exit(0));
});
