/**
 * The golden set on disk, built once per test run: the first test file that asks writes it into the
 * run's shared directory (test/support/run-dir-global-setup.ts), the others wait for it and read the
 * same files. Building it takes about 12 s of CPU, and the files that need it often run side by side.
 * Read only: a test that changes a case writes its own copy (writeGoldenSet).
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { waitFor } from '../support/wait-for.js';
import { writeGoldenSet } from './generate.js';

export async function sharedGoldenSet(): Promise<string> {
  const dir = join(inject('runDir'), 'golden');
  try {
    // Whoever creates the lock builds the set; it appears whole, by a rename.
    mkdirSync(`${dir}.lock`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await waitFor(() => existsSync(dir), 'the golden set another test file is building', 110_000, 100);
    return dir;
  }
  await writeGoldenSet(`${dir}.tmp`);
  renameSync(`${dir}.tmp`, dir);
  return dir;
}
