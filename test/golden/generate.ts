/**
 * Writes the golden set: each case's snapshot (built through the real telemetry store and snapshot
 * builder, see golden-set.ts) to snapshots/<name>.json and every label to snapshots/labels.json.
 *
 *   node --import ./test/support/register-ts.js test/golden/generate.ts          # rewrite
 *   node --import ./test/support/register-ts.js test/golden/generate.ts --check  # exit 1 if stale
 *
 * The golden test runs the same comparison, so CI fails when the committed files are not what the
 * pipeline makes.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GOLDEN, buildCase } from './golden-set.js';

export const SNAPSHOT_DIR = join(dirname(fileURLToPath(import.meta.url)), 'snapshots');

/** The files the golden set consists of, by name, as text. */
export function goldenFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  const labels: Record<string, { label: string; rubric: string[]; description: string }> = {};
  for (const [name, c] of Object.entries(GOLDEN)) {
    files[`${name}.json`] = `${JSON.stringify(buildCase(name))}\n`;
    labels[name] = { label: c.label, rubric: c.rubric, description: c.description };
  }
  files['labels.json'] = `${JSON.stringify(labels, null, 2)}\n`;
  return files;
}

/** Files whose committed text differs from the generator's. */
export function staleFiles(files: Record<string, string>): string[] {
  return Object.entries(files).flatMap(([file, text]) => {
    const path = join(SNAPSHOT_DIR, file);
    return existsSync(path) && readFileSync(path, 'utf8') === text ? [] : [file];
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = goldenFiles();
  if (process.argv.includes('--check')) {
    const stale = staleFiles(files);
    if (stale.length) {
      console.error(`stale golden snapshots (rerun test/golden/generate.ts): ${stale.join(', ')}`);
      process.exit(1);
    }
    console.log(`checked ${Object.keys(files).length} files in ${SNAPSHOT_DIR}`);
  } else {
    mkdirSync(SNAPSHOT_DIR, { recursive: true });
    for (const [file, text] of Object.entries(files)) writeFileSync(join(SNAPSHOT_DIR, file), text);
    console.log(`wrote ${Object.keys(files).length} files in ${SNAPSHOT_DIR}`);
  }
}
