/**
 * The console's size budget: everything a browser downloads for the first page (HTML, scripts,
 * styles, icons), gzipped as the coordinator serves it, must stay within BUNDLE_BUDGET_BYTES. Checked
 * at every build (it fails past the budget) and by test/console/bundle.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';

/** 64 KiB gzipped (the first build was 45 KiB): a phone on a slow link still gets the page in seconds. */
export const BUNDLE_BUDGET_BYTES = 64 * 1024;

export interface BuildSize {
  files: { path: string; bytes: number; gzipBytes: number }[];
  bytes: number;
  gzipBytes: number;
}

/** Sizes of every file of a build, raw and gzipped (level 9, as the coordinator serves them). */
export function measureBuild(dir: string): BuildSize {
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const full = join(e.parentPath, e.name);
      const body = readFileSync(full);
      return { path: relative(dir, full).split(sep).join('/'), bytes: body.length, gzipBytes: Math.min(body.length, gzipSync(body, { level: 9 }).length) };
    })
    .sort((a, b) => b.gzipBytes - a.gzipBytes);
  return { files, bytes: files.reduce((s, f) => s + f.bytes, 0), gzipBytes: files.reduce((s, f) => s + f.gzipBytes, 0) };
}

export function formatSize(size: BuildSize): string {
  const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;
  const lines = size.files.map((f) => `  ${f.path.padEnd(40)} ${kib(f.bytes).padStart(10)}  ${kib(f.gzipBytes).padStart(10)} gzipped`);
  return [`console bundle: ${kib(size.gzipBytes)} gzipped (${kib(size.bytes)} raw) of a ${kib(BUNDLE_BUDGET_BYTES)} budget`, ...lines].join('\n');
}
