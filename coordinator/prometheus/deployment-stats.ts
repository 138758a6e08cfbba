/**
 * Aggregates over every deployment in fleet.db for the metrics: how many are in each phase, and the
 * devices over every rollback by outcome. Read-only queries on the engine's `deployments` table
 * (engine-migrations.ts): one indexed GROUP BY and one pass over the deployments' rollback summaries,
 * a few hundred rows, not the per-device table. I/O shell (SQLite).
 */
import type { Db } from '../store/db.js';

export const ROLLBACK_OUTCOMES = ['exposed', 'confirmed', 'unreachable', 'refused'] as const;

export class DeploymentStats {
  private readonly phases;
  private readonly rollbacks;

  constructor(db: Db) {
    this.phases = db.prepare<[], { phase: string; n: number }>('SELECT phase, COUNT(*) AS n FROM deployments GROUP BY phase');
    this.rollbacks = db.prepare<[], Record<(typeof ROLLBACK_OUTCOMES)[number], number | null>>(
      `SELECT ${ROLLBACK_OUTCOMES.map((o) => `SUM(json_extract(core_json, '$.rollback.${o}')) AS ${o}`).join(', ')}
       FROM deployments WHERE json_extract(core_json, '$.rollback') IS NOT NULL`,
    );
  }

  byPhase(): Record<string, number> {
    return Object.fromEntries(this.phases.all().map((r) => [r.phase, r.n]));
  }

  rollbackDevices(): Record<string, number> {
    const row = this.rollbacks.get();
    return Object.fromEntries(ROLLBACK_OUTCOMES.map((o) => [o, row?.[o] ?? 0]));
  }
}
