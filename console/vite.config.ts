/**
 * Builds the operator console (console/src, Preact + uPlot) into coordinator/dist/console-app, beside
 * the coordinator package that serves it at `/`. Hashed file names (cached for a year), nothing inlined (the page's CSP allows only
 * this origin's files), and a size check against the budget in build/budget.ts.
 */
import { fileURLToPath } from 'node:url';
import type { ConfigEnv, Plugin, UserConfig } from 'vite';
import { BUNDLE_BUDGET_BYTES, formatSize, measureBuild } from './build/budget.js';

const root = fileURLToPath(new URL('.', import.meta.url));

/** Prints the gzipped size of the build and fails it past the budget. */
function budget(outDir: string): Plugin {
  return {
    name: 'fleet-console-budget',
    apply: 'build',
    closeBundle() {
      const size = measureBuild(outDir);
      this.info(formatSize(size));
      if (size.gzipBytes > BUNDLE_BUDGET_BYTES) {
        this.error(`the console is ${size.gzipBytes} bytes gzipped, over its ${BUNDLE_BUDGET_BYTES}-byte budget (console/build/budget.ts)`);
      }
    },
  };
}

export default ({ mode }: ConfigEnv): UserConfig => {
  const outDir = process.env['FLEET_CONSOLE_OUT'] ?? fileURLToPath(new URL('../coordinator/dist/console-app', import.meta.url));
  return {
    root,
    base: '/',
    logLevel: mode === 'quiet' ? 'warn' : 'info',
    oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      assetsInlineLimit: 0,
      modulePreload: { polyfill: false },
      sourcemap: false,
      reportCompressedSize: false,
    },
    plugins: [budget(outDir)],
  };
};
