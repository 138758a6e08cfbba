/**
 * The SQLite DeploymentRepository (better-sqlite3, synchronous): deployments (the engine's core state
 * as JSON plus queryable columns), their waves, per-device progress, gate decisions and the canary
 * snapshot each gate judged. `save` writes a step's changes in one transaction, guarded by the core's
 * revision. All of deployment persistence's SQL is here. I/O adapter.
 *
 * Its tables come from deployment-migrations.ts (versions 100–199, listed in coordinator/store/migration-list.ts)
 * and, for gate snapshots, the store's migration 6.
 */
import type Database from 'better-sqlite3';
import { FleetError } from '@fleet/protocol/errors';
import type { CanarySnapshot } from '@fleet/protocol/canary';
import { DecisionRecordSchema, type DecisionRecord } from '../gate/decision.js';
import { shardDevices } from '../engine/device-progress.js';
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
      `deployment ${id} is at revision ${found} in the store, expected ${expected}; another coordinator may be using this data directory — stop it and restart this one`,
    );
  }
}

/** A stored row failed its schema: the database was edited by hand or written by an incompatible build. */
export class CorruptRecordError extends FleetError {
  constructor(what: string, detail: string) {
    super('corrupt-record', `${what} in the database is unreadable (${detail}); restore the data directory from a backup`);
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

export class SqliteDeploymentRepository implements DeploymentRepository {
  private readonly stmts;

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      revision: db.prepare<[string], { revision: number }>('SELECT revision FROM deployments WHERE id = ?'),
      upsertDeployment: db.prepare(
        `INSERT INTO deployments (id, phase, firmware_version, hardware_models, current_wave, revision, created_at, updated_at, core_json)
         VALUES (@id, @phase, @firmware_version, @hardware_models, @current_wave, @revision, @created_at, @updated_at, @core_json)
         ON CONFLICT (id) DO UPDATE SET phase = excluded.phase, current_wave = excluded.current_wave, revision = excluded.revision,
           updated_at = excluded.updated_at, core_json = excluded.core_json`,
      ),
      upsertWave: db.prepare(
        `INSERT INTO deployment_waves (deployment_id, wave_index, percent, status, started_at, completed_at, verdict, counts_json)
         VALUES (@deployment_id, @wave_index, @percent, @status, @started_at, @completed_at, @verdict, @counts_json)
         ON CONFLICT (deployment_id, wave_index) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,
           completed_at = excluded.completed_at, verdict = excluded.verdict, counts_json = excluded.counts_json`,
      ),
      upsertDevice: db.prepare(
        `INSERT INTO deployment_devices (deployment_id, device_id, bucket, wave, state, reason, timed_out, rollback_status, updated_at, progress_json)
         VALUES (@deployment_id, @device_id, @bucket, @wave, @state, @reason, @timed_out, @rollback_status, @updated_at, @progress_json)
         ON CONFLICT (deployment_id, device_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, timed_out = excluded.timed_out,
           rollback_status = excluded.rollback_status, updated_at = excluded.updated_at, progress_json = excluded.progress_json`,
      ),
      upsertDecision: db.prepare(
        `INSERT OR REPLACE INTO decisions (id, deployment_id, wave, attempt, at, source, recommendation, rule, inputs_digest, record_json)
         VALUES (@id, @deployment_id, @wave, @attempt, @at, @source, @recommendation, @rule, @inputs_digest, @record_json)`,
      ),
      core: db.prepare<[string], { core_json: string }>('SELECT core_json FROM deployments WHERE id = ?'),
      devices: db.prepare<[string], { progress_json: string }>('SELECT progress_json FROM deployment_devices WHERE deployment_id = ?'),
      devicesOfWave: db.prepare<[string, number], { progress_json: string }>(
        'SELECT progress_json FROM deployment_devices WHERE deployment_id = ? AND wave = ? ORDER BY device_id',
      ),
      live: db.prepare<unknown[], { id: string; core_json: string }>(
        `SELECT id, core_json FROM deployments WHERE phase NOT IN (${NON_LIVE.map(() => '?').join(', ')}) ORDER BY created_at`,
      ),
      rolledBackUnreachable: db.prepare<[], { id: string; core_json: string }>(
        `SELECT id, core_json FROM deployments WHERE phase = 'rolled-back' AND json_extract(core_json, '$.rollback.unreachable') > 0`,
      ),
      decisions: db.prepare<[string], { record_json: string }>('SELECT record_json FROM decisions WHERE deployment_id = ? ORDER BY at, rowid'),
      putSnapshot: db.prepare<[string, string, number, number, string]>(
        'INSERT OR IGNORE INTO gate_snapshots (digest, deployment_id, wave, taken_at, snapshot_json) VALUES (?, ?, ?, ?, ?)',
      ),
      snapshot: db.prepare<[string], { snapshot_json: string }>('SELECT snapshot_json FROM gate_snapshots WHERE digest = ?'),
      deviceHistory: db.prepare<[string, number], { deployment_id: string; progress_json: string }>(
        'SELECT deployment_id, progress_json FROM deployment_devices WHERE device_id = ? ORDER BY updated_at DESC LIMIT ?',
      ),
    };
    this.saveTx = db.transaction((change: Parameters<DeploymentRepository['save']>[0]) => this.saveInner(change));
  }

  private readonly saveTx: (change: Parameters<DeploymentRepository['save']>[0]) => void;

  save(change: { core: DeploymentCore; devices: readonly DeviceProgress[]; decisions: readonly DecisionRecord[] }): void {
    this.saveTx(change);
  }

  private saveInner({ core, devices, decisions }: { core: DeploymentCore; devices: readonly DeviceProgress[]; decisions: readonly DecisionRecord[] }): void {
    const id = core.spec.id;
    const row = this.stmts.revision.get(id);
    if (row && row.revision >= core.revision) throw new RevisionConflictError(id, core.revision - 1, row.revision);
    this.stmts.upsertDeployment.run({
      id,
      phase: core.phase,
      firmware_version: core.spec.firmwareVersion,
      hardware_models: JSON.stringify(core.spec.target.hardwareModels),
      current_wave: core.current,
      revision: core.revision,
      created_at: core.spec.createdAt,
      updated_at: core.updatedAt,
      core_json: coreJson(core),
    });
    for (const w of core.waves) {
      this.stmts.upsertWave.run({
        deployment_id: id,
        wave_index: w.index,
        percent: core.spec.waves[w.index]!.percent,
        status: w.status,
        started_at: w.startedAt ?? null,
        completed_at: w.completedAt ?? null,
        verdict: w.verdict ?? null,
        counts_json: JSON.stringify(w.counts),
      });
    }
    for (const d of devices) {
      this.stmts.upsertDevice.run({
        deployment_id: id,
        device_id: d.deviceId,
        bucket: d.bucket,
        wave: d.wave,
        state: d.state,
        reason: d.reason ?? null,
        timed_out: d.timedOut ? 1 : 0,
        rollback_status: d.rollback?.status ?? null,
        updated_at: core.updatedAt,
        progress_json: JSON.stringify(d),
      });
    }
    for (const r of decisions) {
      this.stmts.upsertDecision.run({
        id: r.id,
        deployment_id: r.deploymentId,
        wave: r.wave,
        attempt: r.attempt,
        at: r.at,
        source: r.source,
        recommendation: r.final.recommendation,
        rule: r.final.rule,
        inputs_digest: r.inputsDigest,
        record_json: JSON.stringify(r),
      });
    }
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

  load(deploymentId: string): DeploymentState | undefined {
    const row = this.stmts.core.get(deploymentId);
    if (!row) return undefined;
    const core = this.parseCore(row.core_json, deploymentId);
    return { core, devices: shardDevices(this.parseDevices(this.stmts.devices.all(deploymentId), deploymentId)) };
  }

  /**
   * Active deployments, plus for each hardware model the newest finished one that still has work: a
   * completed one (late devices take its retained manifest) or a rolled-back one with unreachable
   * devices (they get the rollback command when they reconnect).
   */
  loadLive(): DeploymentState[] {
    const cores = this.stmts.live.all(...NON_LIVE).map((r) => this.parseCore(r.core_json, r.id));
    const rolledBack = this.stmts.rolledBackUnreachable.all().map((r) => this.parseCore(r.core_json, r.id));
    const all = [...cores, ...rolledBack].sort((a, b) => a.spec.createdAt - b.spec.createdAt);
    const newest = new Map<string, number>();
    for (const c of all) for (const m of c.spec.target.hardwareModels) newest.set(m, Math.max(newest.get(m) ?? 0, c.spec.createdAt));
    const keep = all.filter(
      (c) => ACTIVE_PHASES.includes(c.phase) || c.spec.target.hardwareModels.some((m) => newest.get(m) === c.spec.createdAt),
    );
    return keep.map((core) => ({ core, devices: shardDevices(this.parseDevices(this.stmts.devices.all(core.spec.id), core.spec.id)) }));
  }

  list(options: { phases?: readonly DeploymentPhase[]; limit?: number } = {}): DeploymentCore[] {
    const phases = options.phases ?? [];
    const where = phases.length ? `WHERE phase IN (${phases.map(() => '?').join(', ')})` : '';
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const rows = this.db
      .prepare<unknown[], { id: string; core_json: string }>(`SELECT id, core_json FROM deployments ${where} ORDER BY created_at DESC, id LIMIT ${limit}`)
      .all(...phases);
    return rows.map((r) => this.parseCore(r.core_json, r.id));
  }

  decisions(deploymentId: string): DecisionRecord[] {
    return this.stmts.decisions.all(deploymentId).map((r) => {
      const parsed = DecisionRecordSchema.safeParse(JSON.parse(r.record_json));
      if (!parsed.success) throw new CorruptRecordError(`a decision of deployment ${deploymentId}`, parsed.error.issues[0]?.message ?? 'schema mismatch');
      return parsed.data;
    });
  }

  devices(deploymentId: string, wave?: number): DeviceProgress[] {
    const rows = wave === undefined ? this.stmts.devices.all(deploymentId) : this.stmts.devicesOfWave.all(deploymentId, wave);
    const out = this.parseDevices(rows, deploymentId);
    return wave === undefined ? out.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0)) : out;
  }

  /** Stores the canary snapshot a gate judged under the digest its decision records (once per digest). */
  saveSnapshot(digest: string, deploymentId: string, wave: number, takenAt: number, snapshot: CanarySnapshot): void {
    this.stmts.putSnapshot.run(digest, deploymentId, wave, takenAt, JSON.stringify(snapshot));
  }

  /** The canary snapshot stored under a decision's inputs digest. */
  snapshot(digest: string): CanarySnapshot | undefined {
    const row = this.stmts.snapshot.get(digest);
    return row ? (JSON.parse(row.snapshot_json) as CanarySnapshot) : undefined;
  }

  /** One device's progress in every deployment that tracked it, newest first (at most `limit`). */
  deviceHistory(deviceId: string, limit = 50): (DeviceProgress & { deploymentId: string })[] {
    return this.stmts.deviceHistory.all(deviceId, limit).map((r) => {
      const parsed = DeviceProgressSchema.safeParse(JSON.parse(r.progress_json));
      if (!parsed.success) throw new CorruptRecordError(`device ${deviceId} in deployment ${r.deployment_id}`, parsed.error.issues[0]?.message ?? 'schema mismatch');
      return { ...parsed.data, deploymentId: r.deployment_id };
    });
  }
}
