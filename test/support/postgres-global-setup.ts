/**
 * Vitest global setup of the integration and e2e tiers: one PostgreSQL server for the run (each test
 * gets its own database in it: test/support/postgres.ts), stopped and removed at the end.
 */
import type { TestProject } from 'vitest/node';
import { startPostgresServer } from './postgres-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the run's PostgreSQL server. */
    postgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgresServer();
  project.provide('postgresUrl', server.url);
  return () => server.destroy();
}
