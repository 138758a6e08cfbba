/**
 * The DeploymentRepository on the Sql interface, for SQLite and PostgreSQL alike: deployments (the
 * engine's core state as JSON plus queryable columns), their waves, per-device progress, gate
 * decisions and the canary snapshot each gate judged. `save` writes a step's changes in one
 * transaction, guarded by the core's revision. All of deployment persistence's SQL is here. I/O adapter.
 *
 * Its tables come from deployment-migrations.ts (versions 100–199, listed in
 * coordinator/store/migration-list.ts) and, for gate snapshots, the store's own migrations.
 */
import { FleetError } from '@fleet/protocol/errors';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import { DecisionRecordSchema, type DecisionRecord } from '../gate/decision.js';
import { shardDevices } from '../engine/device-progress.js';
import { MultiRowInsert } from '../store/multi-row-insert.js';
import { placeholders, type Sql, type SqlQueries, type SqlValue } from '../store/sql.js';
import {
  DeploymentCoreSchema,
  DeviceProgressSchema,
  ACTIVE_PHASES,
  FINAL_PHASES,
  type DeploymentCore,
  type DeploymentPhase,
  type DeploymentRepository,
  type DeploymentState,
  type DeviceProgress,
} from '../engine/types.js';

/** Someone else saved this deployment in between (two coordinators on one database, or a bug). */
export class RevisionConflictError extends FleetError {
  constructor(id: string, expected: number, found: number) {
    super(
      'revision-conflict',
      `deployment ${id} is at revision ${found} in the store, expected ${expected}; another coordinator may be using this store — stop it and restart this one`,
    );
  }
}

/** A stored row failed its schema: the database was edited by hand or written by an incompatible build. */
export class CorruptRecordError extends FleetError {
  constructor(what: string, detail: string) {
    super('corrupt-record', `${what} in the database is unreadable (${detail}); restore the store from a backup`);
  }
}

const NON_LIVE: readonly DeploymentPhase[] = FINAL_PHASES;

/**
 * The spec is immutable once created and shared by every state of its deployment (device-progress.ts
 * cloneCore), and it is most of the core (the signed manifest): serialised once, not at every save.
 */
const specJson = new WeakMap<DeploymentCore['spec'], string>();

/** JSON of the core, its spec serialised once per deployment. Parses to the same object as JSON.stringify(core). */
export function coreJson(core: DeploymentCore): string {
  const { spec, ...rest } = core;
  let json = specJson.get(spec);
  if (json === undefined) {
    json = JSON.stringify(spec);
    specJson.set(spec, json);
  }
  const others = JSON.stringify(rest);
  return others === '{}' ? `{"spec":${json}}` : `{"spec":${json},${others.slice(1)}`;
}

/** `INSERT INTO table (cols) VALUES (…), (…) <tail>`, a few statements for any number of rows. */
const upsert = (table: string, columns: readonly string[], tail: string): MultiRowInsert =>
  new MultiRowInsert(`INSERT INTO ${table} (${columns.join(', ')})`, columns.length, tail);

const DEVICE_COLUMNS = ['deployment_id', 'device_id', 'bucket', 'wave', 'state', 'reason', 'timed_out', 'rollback_status', 'updated_at', 'progress_json'];
const DEVICE_UPSERT = `ON CONFLICT (deployment_id, device_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, timed_out = excluded.timed_out,
  rollback_status = excluded.rollback_status, updated_at = excluded.updated_at, progress_json = excluded.progress_json`;
const WAVE_COLUMNS = ['deployment_id', 'wave_index', 'percent', 'status', 'started_at', 'completed_at', 'verdict', 'counts_json'];
const WAVE_UPSERT = `ON CONFLICT (deployment_id, wave_index) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,
  completed_at = excluded.completed_at, verdict = excluded.verdict, counts_json = excluded.counts_json`;
const DECISION_COLUMNS = ['id', 'deployment_id', 'wave', 'attempt', 'at', 'source', 'recommendation', 'rule', 'inputs_digest', 'record_json'];
const DECISION_UPSERT = `ON CONFLICT (id) DO UPDATE SET deployment_id = excluded.deployment_id, wave = excluded.wave, attempt = excluded.attempt,
  at = excluded.at, source = excluded.source, recommendation = excluded.recommendation, rule = excluded.rule,
  inputs_digest = excluded.inputs_digest, record_json = excluded.record_json`;
const PUT_DEVICES = upsert('deployment_devices', DEVICE_COLUMNS, DEVICE_UPSERT);
const PUT_WAVES = upsert('deployment_waves', WAVE_COLUMNS, WAVE_UPSERT);
const PUT_DECISIONS = upsert('decisions', DECISION_COLUMNS, DECISION_UPSERT);

export class SqlDeploymentRepository implements DeploymentRepository {
  /** Insertion order of decisions (SQLite's rowid; PostgreSQL's `seq` column), for ties in `at`. */
  private readonly decisionOrder: string;
  /** Rolled-back deployments that left devices unreachable (JSON in SQL differs per dialect). */
  private readonly unreachableSql: string;

  /**
   * `guard` runs first in every save's transaction and throws to refuse it: replicated coordinators
   * fence a stale leader's writes with it (cluster/leader-election.ts).
   */
  constructor(
    private readonly sql: Sql,
    private readonly guard?: (tx: SqlQueries) => Promise<void>,
  ) {
    this.decisionOrder = sql.dialect === 'postgres' ? 'at, seq' : 'at, rowid';
    const unreachable =
      sql.dialect === 'postgres'
        ? `COALESCE((core_json::jsonb #>> '{rollback,unreachable}')::numeric, 0) > 0`
        : `json_extract(core_json, '$.rollback.unreachable') > 0`;
    this.unreachableSql = `SELECT id, core_json FROM deployments WHERE phase = 'rolled-back' AND ${unreachable}`;
  }

  async save({ core, devices, decisions }: { core: DeploymentCore; devices: readonly DeviceProgress[]; decisions: readonly DecisionRecord[] }): Promise<void> {
    const id = core.spec.id;
    // One row per key in a multi-row upsert (PostgreSQL refuses to update a row twice in one statement).
    devices = [...new Map(devices.map((d) => [d.deviceId, d])).values()];
    decisions = [...new Map(decisions.map((r) => [r.id, r])).values()];
    await this.sql.transaction(async (tx) => {
      await this.guard?.(tx);
      const row = await tx.get<{ revision: number }>('SELECT revision FROM deployments WHERE id = ?', [id]);
      if (row && row.revision >= core.revision) throw new RevisionConflictError(id, core.revision - 1, row.revision);
      await tx.run(
        `INSERT INTO deployments (id, phase, firmware_version, hardware_models, current_wave, revision, created_at, updated_at, core_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, current_wave = excluded.current_wave, revision = excluded.revision,
           updated_at = excluded.updated_at, core_json = excluded.core_json`,
        [id, core.phase, core.spec.firmwareVersion, JSON.stringify(core.spec.target.hardwareModels), core.current, core.revision, core.spec.createdAt, core.updatedAt, coreJson(core)],
      );
      const waves = core.waves.map((w): SqlValue[] => [
        id,
        w.index,
        core.spec.waves[w.index]!.percent,
        w.status,
        w.startedAt ?? null,
        w.completedAt ?? null,
        w.verdict ?? null,
        JSON.stringify(w.counts),
      ]);
      await PUT_WAVES.run(tx, waves.flat());
      const rows = devices.map((d): SqlValue[] => [
        id,
        d.deviceId,
        d.bucket,
        d.wave,
        d.state,
        d.reason ?? null,
        d.timedOut ? 1 : 0,
        d.rollback?.status ?? null,
        core.updatedAt,
        JSON.stringify(d),
      ]);
      await PUT_DEVICES.run(tx, rows.flat());
      const records = decisions.map((r): SqlValue[] => [
        r.id,
        r.deploymentId,
        r.wave,
        r.attempt,
        r.at,
        r.source,
        r.final.recommendation,
        r.final.rule,
        r.inputsDigest,
        JSON.stringify(r),
      ]);
      await PUT_DECISIONS.run(tx, records.flat());
    });
  }

  private parseCore(json: string, id: string): DeploymentCore {
    const parsed = DeploymentCoreSchema.safeParse(JSON.parse(json));
    if (!parsed.success) throw new CorruptRecordError(`deployment ${id}`, parsed.error.issues[0]?.message ?? 'schema mismatch');
    return parsed.data;
  }

  private parseDevices(rows: readonly { progress_json: string }[], id: string): DeviceProgress[] {
    return rows.map((r) => {
      const parsed = DeviceProgressSchema.safeParse(JSON.parse(r.progress_json));
      if (!parsed.success) throw new CorruptRecordError(`a device of deployment ${id}`, parsed.error.issues[0]?.message ?? 'schema mismatch');
      return parsed.data;
    });
  }

  private async deviceRows(deploymentId: string): Promise<{ progress_json: string }[]> {
    return this.sql.all<{ progress_json: string }>('SELECT progress_json FROM deployment_devices WHERE deployment_id = ?', [deploymentId]);
  }

  async load(deploymentId: string): Promise<DeploymentState | undefined> {
    const row = await this.sql.get<{ core_json: string }>('SELECT core_json FROM deployments WHERE id = ?', [deploymentId]);
    if (!row) return undefined;
    const core = this.parseCore(row.core_json, deploymentId);
    return { core, devices: shardDevices(this.parseDevices(await this.deviceRows(deploymentId), deploymentId)) };
  }

  /**
   * Active deployments, plus for each hardware model the newest finished one that still has work: a
   * completed one (late devices take its retained manifest) or a rolled-back one with unreachable
   * devices (they get the rollback command when they reconnect).
   */
  async loadLive(): Promise<DeploymentState[]> {
    const live = await this.sql.all<{ id: string; core_json: string }>(
      `SELECT id, core_json FROM deployments WHERE phase NOT IN (${placeholders(NON_LIVE.length)}) ORDER BY created_at`,
      NON_LIVE,
    );
    const rolledBack = await this.sql.all<{ id: string; core_json: string }>(this.unreachableSql);
    const all = [...live, ...rolledBack].map((r) => this.parseCore(r.core_json, r.id)).sort((a, b) => a.spec.createdAt - b.spec.createdAt);
    const newest = new Map<string, number>();
    for (const c of all) for (const m of c.spec.target.hardwareModels) newest.set(m, Math.max(newest.get(m) ?? 0, c.spec.createdAt));
    const keep = all.filter(
      (c) => ACTIVE_PHASES.includes(c.phase) || c.spec.target.hardwareModels.some((m) => newest.get(m) === c.spec.createdAt),
    );
    const out: DeploymentState[] = [];
    for (const core of keep) out.push({ core, devices: shardDevices(this.parseDevices(await this.deviceRows(core.spec.id), core.spec.id)) });
    return out;
  }

  async list(options: { phases?: readonly DeploymentPhase[]; limit?: number } = {}): Promise<DeploymentCore[]> {
    const phases = options.phases ?? [];
    const where = phases.length ? `WHERE phase IN (${placeholders(phases.length)})` : '';
    const limit = Math.max(1, Math.min(Math.floor(options.limit ?? 100), 10_000));
    const rows = await this.sql.all<{ id: string; core_json: string }>(`SELECT id, core_json FROM deployments ${where} ORDER BY created_at DESC, id LIMIT ${limit}`, phases);
    return rows.map((r) => this.parseCore(r.core_json, r.id));
  }

  async decisions(deploymentId: string): Promise<DecisionRecord[]> {
    const rows = await this.sql.all<{ record_json: string }>(`SELECT record_json FROM decisions WHERE deployment_id = ? ORDER BY ${this.decisionOrder}`, [deploymentId]);
    return rows.map((r) => {
      const parsed = DecisionRecordSchema.safeParse(JSON.parse(r.record_json));
      if (!parsed.success) throw new CorruptRecordError(`a decision of deployment ${deploymentId}`, parsed.error.issues[0]?.message ?? 'schema mismatch');
      return parsed.data;
    });
  }

  async devices(deploymentId: string, wave?: number): Promise<DeviceProgress[]> {
    const rows =
      wave === undefined
        ? await this.deviceRows(deploymentId)
        : await this.sql.all<{ progress_json: string }>('SELECT progress_json FROM deployment_devices WHERE deployment_id = ? AND wave = ? ORDER BY device_id', [deploymentId, wave]);
    const out = this.parseDevices(rows, deploymentId);
    return wave === undefined ? out.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0)) : out;
  }

  /** Stores the canary snapshot a gate judged under the digest its decision records (once per digest). */
  async saveSnapshot(digest: string, deploymentId: string, wave: number, takenAt: number, snapshot: CanarySnapshot): Promise<void> {
    await this.sql.run(
      'INSERT INTO gate_snapshots (digest, deployment_id, wave, taken_at, snapshot_json) VALUES (?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING',
      [digest, deploymentId, wave, takenAt, JSON.stringify(snapshot)],
    );
  }

  /** The canary snapshot stored under a decision's inputs digest. */
  async snapshot(digest: string): Promise<CanarySnapshot | undefined> {
    const row = await this.sql.get<{ snapshot_json: string }>('SELECT snapshot_json FROM gate_snapshots WHERE digest = ?', [digest]);
    return row ? (JSON.parse(row.snapshot_json) as CanarySnapshot) : undefined;
  }

  /** One device's progress in every deployment that tracked it, newest first (at most `limit`). */
  async deviceHistory(deviceId: string, limit = 50): Promise<(DeviceProgress & { deploymentId: string })[]> {
    const rows = await this.sql.all<{ deployment_id: string; progress_json: string }>(
      'SELECT deployment_id, progress_json FROM deployment_devices WHERE device_id = ? ORDER BY updated_at DESC LIMIT ?',
      [deviceId, limit],
    );
    return rows.map((r) => {
      const parsed = DeviceProgressSchema.safeParse(JSON.parse(r.progress_json));
      if (!parsed.success) throw new CorruptRecordError(`device ${deviceId} in deployment ${r.deployment_id}`, parsed.error.issues[0]?.message ?? 'schema mismatch');
      return { ...parsed.data, deploymentId: r.deployment_id };
    });
  }
}
