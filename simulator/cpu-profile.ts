/**
 * CPU profiles of the simulator's child processes for the benchmark: with `FLEET_CPU_PROF_DIR` set,
 * every device process (and every benchmark child) runs under `node --cpu-prof` and writes its
 * profile there when it exits. Profile timestamps are the machine's monotonic clock in µs (the same
 * as `process.hrtime`), so samples of every process can be cut to one window of the run.
 */

/** The directory profiles are written to, when profiling is asked for. */
export function cpuProfileDir(): string | undefined {
  const dir = process.env['FLEET_CPU_PROF_DIR'];
  return dir ? dir : undefined;
}

/** Extra exec arguments for a child: profile it into `FLEET_CPU_PROF_DIR` (none when unset, or already inherited). */
export function cpuProfileArgv(inherited: readonly string[] = []): string[] {
  const dir = cpuProfileDir();
  if (dir === undefined || inherited.some((a) => a.startsWith('--cpu-prof'))) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}
