/**
 * Device-secret checks per second, by stored form, in one run: the fast form (sha256) alone and
 * through CredentialStore.verify with its store read (nothing remembered between checks: every check a
 * first login), against scrypt at the production cost (14) and at the benchmarks' (4), two at a
 * time as the credential store's queue runs them. Figures for docs/credential-hashing.md.
 * Run: `npm run build && node coordinator/dist/bench/credential-check-rate.js [--seconds 3]`.
 */
import { loadavg } from 'node:os';
import { CredentialStore } from '../broker/credentials.js';
import { fastHash, newDeviceSecret, scryptHash, verifyFast, verifyScrypt } from '../broker/secret-hash.js';
import { openSqliteStore } from '../store/open-store.js';

const i = process.argv.indexOf('--seconds');
const SECONDS = i >= 0 ? Number(process.argv[i + 1]) : 3;

interface Rate {
  what: string;
  perSecond: number;
  msPerCheck: number;
}

/** Runs `check` `lanes` at a time for SECONDS; checks per second and the mean time of one. */
async function measure(what: string, lanes: number, check: () => Promise<unknown>): Promise<Rate> {
  const until = performance.now() + SECONDS * 1000;
  let done = 0;
  let busyMs = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await check();
      busyMs += performance.now() - t0;
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: lanes }, lane));
  const elapsed = (performance.now() - t0) / 1000;
  return { what, perSecond: Math.round(done / elapsed), msPerCheck: Number((busyMs / done).toFixed(3)) };
}

const secret = newDeviceSecret();
const fast = fastHash(secret);
const rates: Rate[] = [];
rates.push(await measure('sha256 (verifyFast)', 1, () => Promise.resolve(verifyFast(secret, fast))));

const sql = openSqliteStore(':memory:');
const store = await CredentialStore.load(sql);
const ids = Array.from({ length: 1000 }, (_, n) => `rate-${n}`);
const secrets = new Map((await store.provisionMany(ids)).map((d) => [d.deviceId, d.secret]));
let n = 0;
rates.push(
  await measure('sha256 via CredentialStore.verify (SQLite read, first login)', 1, async () => {
    const id = ids[n++ % ids.length]!;
    store.forget(id);
    if (!(await store.verify(id, secrets.get(id)!))) throw new Error(`${id} refused`);
  }),
);
await sql.close();

for (const logN of [14, 4]) {
  const stored = await scryptHash(secret, logN);
  rates.push(await measure(`scrypt cost ${logN}, 2 at a time`, 2, () => verifyScrypt(secret, stored)));
}

const load = loadavg().map((l) => l.toFixed(1)).join(' ');
console.log(`credential checks, ${SECONDS} s each, load average ${load}`);
for (const r of rates) console.log(`${r.what.padEnd(62)} ${String(r.perSecond).padStart(9)} /s  ${r.msPerCheck} ms a check`);
