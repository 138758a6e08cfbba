/**
 * For benchmark receivers: remembers when a running count last changed (epoch ms, polled every few
 * ms), so the parent measures when the last message was handled rather than when it next asked; and
 * the process's CPU time, all threads and the main thread alone. I/O shell (timer, /proc).
 */
import { readFileSync } from 'node:fs';

export interface CountWatch {
  /** Epoch ms of the last change seen (0 before any). */
  lastChangeAt(): number;
  stop(): void;
}

export function watchCount(read: () => number, intervalMs = 5): CountWatch {
  let last = read();
  let at = 0;
  const timer = setInterval(() => {
    const v = read();
    if (v !== last) {
      last = v;
      at = Date.now();
    }
  }, intervalMs);
  timer.unref();
  return { lastChangeAt: () => at, stop: () => clearInterval(timer) };
}

/**
 * CPU time (user + system) of this process's main thread — the broker's — in µs, from
 * /proc/self/task/<pid>/stat; undefined where there is no /proc (not Linux). The kernel counts in
 * ticks of 1/100 s (USER_HZ), enough over bursts of seconds.
 */
export function mainThreadCpuMicros(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), from field 3: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, all threads) the process has used, in µs. */
export function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
