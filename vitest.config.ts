import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Workspace packages (`@fleet/protocol/…`) resolve to their TypeScript sources, never a stale dist/.
const conditions = ['@fleet/source', 'node', 'default'];

/**
 * Test tiers (`npm test` runs all three; `npm run test:unit|test:integration|test:e2e` one):
 * - unit: pure code with a manual clock, no broker, database, socket or process — seconds, the inner loop;
 * - integration: real Aedes/Mosquitto on 127.0.0.1, real SQLite, daemons as processes, slot tools;
 * - e2e: fleets of simulated devices end to end, the README walk-through, the packed agent installed.
 * A new test file is an integration test unless it is listed here.
 */
const UNIT = [
  'test/protocol/**/*.test.ts',
  'test/firmware/**/*.test.ts',
  'test/gate/**/*.test.ts',
  'test/flags/bucketing.test.ts',
  'test/support/manual-clock.test.ts',
  'test/agent/{durable-record,state-store,update-machine}.test.ts',
  'test/canary/{judge-v2-layers,stat-analyzer-no-control,stat-judge,stats,stratified-rates}.test.ts',
  'test/coordinator/{connect-admission,counter-map,engine,engine-offered,engine-window,secret-hash,turn-batch}.test.ts',
  'test/simulator/{fleet-model,pace-controller,paced-clock,publish-packet,report,scenario,timer-heap}.test.ts',
  'test/slots/file-conformance.test.ts',
];
/** One PostgreSQL server per tier that has stores (test/support/postgres.ts). */
const POSTGRES = './test/support/postgres-global-setup.ts';
/** A scratch directory the integration files of one run share (test/support/run-dir-global-setup.ts). */
const RUN_DIR = './test/support/run-dir-global-setup.ts';
const E2E = ['test/e2e/**/*.test.ts', 'test/docs/**/*.test.ts', 'test/simulator/remote-simulate.test.ts', 'test/agent/slim-install.test.ts'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@fleet/source'] } },
  test: {
    // No `include` here: a project that extends this config would add its files to it.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Network tests bind 127.0.0.1 port 0 and use unique ids, so files may run in parallel.
    pool: 'forks',
    // Worker threads (the coordinator's telemetry thread) load their entry with Node itself, not
    // through vitest: this loader lets them run the TypeScript sources.
    execArgv: ['--import', fileURLToPath(new URL('./test/support/register-ts.js', import.meta.url))],
    // Vitest's default is one worker per core but one: a single file at a time on a 2-core machine,
    // while most files spend their time waiting on brokers, sockets and child processes. The tiers run
    // one after another (groupOrder). Integration files three at a time: the tier then keeps both cores
    // busy (about 880 CPU-seconds in 440 s), so a fourth would only wait. E2E files three at a time too:
    // a 1,000-device fleet at full pace uses about two thirds of a core, and a paced clock slows, rather
    // than fails, a fleet that gets less.
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [...UNIT, ...E2E], maxWorkers: 3, sequence: { groupOrder: 1 }, globalSetup: [POSTGRES, RUN_DIR] } },
      { extends: true, test: { name: 'e2e', include: E2E, maxWorkers: 3, sequence: { groupOrder: 2 }, globalSetup: [POSTGRES] } },
    ],
  },
});
