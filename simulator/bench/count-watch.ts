/**
 * For benchmark receivers: remembers when a running count last changed (epoch ms, polled every few
 * ms), so the parent measures when the last message was handled rather than when it next asked.
 * I/O shell (timer).
 */
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

/** CPU time (user + system, all threads) the process has used, in µs. */
export function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
