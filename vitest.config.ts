import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Workspace packages (`@fleet/protocol/…`) resolve to their TypeScript sources, never a stale dist/.
const conditions = ['@fleet/source', 'node', 'import', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@fleet/source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Network tests bind 127.0.0.1 port 0 and use unique ids, so files may run in parallel.
    pool: 'forks',
    // Worker threads (the coordinator's telemetry thread) load their entry with Node itself, not
    // through vitest: this loader lets them run the TypeScript sources.
    execArgv: ['--import', fileURLToPath(new URL('./test/support/register-ts.js', import.meta.url))],
  },
});
