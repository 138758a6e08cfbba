/** The console's build: within its size budget, and nothing in it reaches beyond this origin. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLE_BUDGET_BYTES, measureBuild } from '../../console/build/budget.js';
import { consoleBuild } from './console-build.js';

describe('console build', () => {
  it(`stays within ${BUNDLE_BUDGET_BYTES / 1024} KiB gzipped and loads nothing from elsewhere`, async () => {
    const dir = await consoleBuild();
    const size = measureBuild(dir);
    console.log(`console bundle: ${(size.gzipBytes / 1024).toFixed(1)} KiB gzipped, ${(size.bytes / 1024).toFixed(1)} KiB raw, budget ${BUNDLE_BUDGET_BYTES / 1024} KiB`);
    expect(size.gzipBytes).toBeLessThanOrEqual(BUNDLE_BUDGET_BYTES);
    expect(size.files.some((f) => /^assets\/.+\.js$/.test(f.path))).toBe(true);
    // Every file but index.html has a content hash in its name (cached for a year).
    for (const f of size.files) if (f.path !== 'index.html') expect(f.path).toMatch(/^assets\/[\w.-]+-[\w-]{8}\.\w+$/);
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    // The CSP allows this origin only: no CDN, no inline script or style.
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style=/);
    for (const ref of html.matchAll(/(?:src|href)="([^"]+)"/g)) expect(ref[1]).toMatch(/^\/assets\//);
  }, 60_000);
});
