/**
 * The console built once per content: `vite build` of console/ into a directory named by the hash of
 * its sources and the lockfile, shared by every test file (and every run until the sources change).
 * Tests serve this build (FLEET_CONSOLE_DIR), so they never depend on a stale dist/console.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { repoRoot, spawnProcess } from '../support/processes.js';

function sourceHash(): string {
  const h = createHash('sha256');
  const dir = join(repoRoot, 'console');
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
  for (const f of files) h.update(relative(repoRoot, f)).update('\0').update(readFileSync(f)).update('\0');
  h.update(readFileSync(join(repoRoot, 'package-lock.json')));
  for (const f of ['protocol/console.ts', 'protocol/canary.ts']) h.update(readFileSync(join(repoRoot, f)));
  return h.digest('hex').slice(0, 16);
}

export async function consoleBuild(): Promise<string> {
  const out = join(tmpdir(), 'fleet-console-build', sourceHash());
  if (existsSync(join(out, 'index.html'))) return out;
  const temp = `${out}.${process.pid}.tmp`;
  // What `npm run build:console` runs, with the output directory moved.
  const vite = spawnProcess(process.execPath, [join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', '--config', join(repoRoot, 'console/vite.config.ts')], {
    env: { FLEET_CONSOLE_OUT: temp },
  });
  const exit = await vite.exited;
  if (exit.code !== 0) throw new Error(`vite build failed (${JSON.stringify(exit)}):\n${vite.output()}`);
  try {
    renameSync(temp, out);
  } catch {
    // Another test process built the same sources first: use theirs.
    rmSync(temp, { recursive: true, force: true });
  }
  return out;
}
