/** Bounded concurrency for fleet-sized loops (connect N devices, stop N devices). Pure control flow. */

/** Runs `task(i)` for i in [0, n) with at most `width` in flight. */
export async function boundedEach(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(width, n) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      await task(i);
    }
  });
  await Promise.all(workers);
}
