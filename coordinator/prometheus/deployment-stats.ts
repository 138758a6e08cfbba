/**
 * Aggregates over every deployment in the store for the metrics: how many are in each phase, and the
 * devices over every rollback by outcome. Read-only queries on the engine's `deployments` table: one
 * GROUP BY, and one pass over the deployments' core JSON that have a rollback summary (a few hundred
 * rows, not the per-device table) — summed here, so the SQL is the same on both stores. I/O shell.
 */
import type { Sql } from '../store/sql.js';

export const ROLLBACK_OUTCOMES = ['exposed', 'confirmed', 'unreachable', 'refused'] as const;
type Outcome = (typeof ROLLBACK_OUTCOMES)[number];

export class DeploymentStats {
  constructor(private readonly sql: Sql) {}

  async byPhase(): Promise<Record<string, number>> {
    const rows = await this.sql.all<{ phase: string; n: number }>('SELECT phase, COUNT(*) AS n FROM deployments GROUP BY phase');
    return Object.fromEntries(rows.map((r) => [r.phase, r.n]));
  }

  async rollbackDevices(): Promise<Record<Outcome, number>> {
    // Every core mentions "rollback" only when it has a summary (or a rollback spec): a cheap filter.
    const rows = await this.sql.all<{ core_json: string }>("SELECT core_json FROM deployments WHERE core_json LIKE '%\"rollback\"%'");
    const total = Object.fromEntries(ROLLBACK_OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
    for (const r of rows) {
      const summary = (JSON.parse(r.core_json) as { rollback?: Partial<Record<Outcome, unknown>> }).rollback;
      if (!summary) continue;
      for (const o of ROLLBACK_OUTCOMES) if (typeof summary[o] === 'number') total[o] += summary[o];
    }
    return total;
  }
}
