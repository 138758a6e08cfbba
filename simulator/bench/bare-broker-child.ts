/**
 * Benchmark child process: a bare Aedes broker (no authentication, no ACL, no coordinator) on
 * 127.0.0.1 port 0, with an optional in-process subscriber that only counts telemetry messages. It is
 * the baseline the simulator's devices and the coordinator's ingest are compared against.
 *
 * IPC: sends {type:'ready', port}; answers {cmd:'stats'} with {type:'stats', received, receivedAt (epoch
 * ms of the last one), cpuUs (all threads), mainCpuUs (the broker's thread; Linux), rss, heapUsed};
 * exits on {cmd:'stop'}.
 */
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { cpuMicros, mainThreadCpuMicros, watchCount } from './count-watch.js';

const aedes = await Aedes.createBroker();
let received = 0;
if (process.argv.includes('--count-telemetry')) {
  aedes.subscribe('fleet/v1/devices/+/telemetry', (_packet, cb) => {
    received++;
    cb();
  }, () => undefined);
}
const watch = watchCount(() => received);
const server = createServer(aedes.handle);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as AddressInfo).port;
process.send?.({ type: 'ready', port });
process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'stats') {
    const m = process.memoryUsage();
    process.send?.({ type: 'stats', received, receivedAt: watch.lastChangeAt(), cpuUs: cpuMicros(), mainCpuUs: mainThreadCpuMicros(), rss: m.rss, heapUsed: m.heapUsed });
  } else if (msg.cmd === 'stop') {
    aedes.close(() => server.close(() => process.exit(0)));
  }
});
