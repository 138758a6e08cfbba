/**
 * Writes the golden set to a directory for offline replay (`fleet canary judge --input`, `fleet canary
 * eval --dir`): each case's snapshot, built through the real telemetry store and snapshot builder (see
 * golden-set.ts), as <name>.json, and every label in labels.json. The snapshots are derived data (about
 * 7 MB), so they are generated, not committed; the golden test builds them the same way in memory.
 *
 *   node --import ./test/support/register-ts.js test/golden/generate.ts [--out dir]   # default test/golden/snapshots
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GOLDEN, buildCase } from './golden-set.js';

export const DEFAULT_SNAPSHOT_DIR = join(dirname(fileURLToPath(import.meta.url)), 'snapshots');

/** The files of the golden set, by name, as text. */
export async function goldenFiles(names: readonly string[] = Object.keys(GOLDEN)): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const labels: Record<string, { label: string; rubric: string[]; description: string }> = {};
  for (const name of names) {
    const c = GOLDEN[name];
    if (!c) throw new Error(`no golden case ${name}`);
    files[`${name}.json`] = `${JSON.stringify(await buildCase(name))}\n`;
    labels[name] = { label: c.label, rubric: c.rubric, description: c.description };
  }
  files['labels.json'] = `${JSON.stringify(labels, null, 2)}\n`;
  return files;
}

/** Writes the golden set (or the named cases) into `dir`; returns the files written. */
export async function writeGoldenSet(dir: string, names?: readonly string[]): Promise<string[]> {
  const files = await goldenFiles(names);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return Object.keys(files);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const dir = at >= 0 && process.argv[at + 1] ? resolve(process.argv[at + 1]!) : DEFAULT_SNAPSHOT_DIR;
  console.log(`wrote ${(await writeGoldenSet(dir)).length} files in ${dir}`);
}
