/**
 * A wrong-password storm in its own process (another "host": its own CPU, source addresses 127.0.0.x),
 * so that whoever measures a legitimate connect is not slowed by the attacker's event loop.
 * Usage: auth-storm-child.ts <port> <device id> <loops> <first source octet> <addresses>
 * Prints `{"attempts":n,"outcomes":{...}}` every 500 ms until SIGTERM.
 */
import { rawConnect } from './raw-mqtt.js';

const [portArg, victim, loopsArg, firstArg, addressesArg] = process.argv.slice(2);
if (!portArg || !victim) throw new Error('usage: auth-storm-child.ts <port> <device id> <loops> <first source octet> <addresses>');
const port = Number(portArg);
const loops = Number(loopsArg ?? 64);
const first = Number(firstArg ?? 2);
const addresses = Number(addressesArg ?? 4);

let stop = false;
let attempts = 0;
const outcomes: Record<string, number> = {};
const report = (): void => {
  process.stdout.write(`${JSON.stringify({ attempts, outcomes })}\n`);
};
const timer = setInterval(report, 500);
process.on('SIGTERM', () => {
  stop = true;
});

await Promise.all(
  Array.from({ length: loops }, async (_, i) => {
    while (!stop) {
      const r = await rawConnect({ port, localAddress: `127.0.0.${first + (i % addresses)}`, clientId: victim, username: victim, password: `wrong-${i}-${attempts}`, timeoutMs: 30_000 }).catch(
        () => ({ closed: true as const }),
      );
      attempts++;
      const k = 'returnCode' in r ? `rc${r.returnCode}` : Object.keys(r)[0]!;
      outcomes[k] = (outcomes[k] ?? 0) + 1;
    }
  }),
);
clearInterval(timer);
report();
process.exit(0);
