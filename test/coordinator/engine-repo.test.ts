import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeDatabase, openDatabase, type Db } from '../../coordinator/store/db.js';
import { coreJson, RevisionConflictError, SqliteDeploymentRepository } from '../../coordinator/deployments/deployment-repo-sqlite.js';
import { allDevices, recount } from '../../coordinator/engine/device-progress.js';
import { createDeployment, reconcile, step } from '../../coordinator/engine/engine.js';
import { snapshotFromProgress } from '../../coordinator/engine/snapshot.js';
import type { DeploymentState, EngineEvent } from '../../coordinator/engine/types.js';
import { HOUR, makeSpec, T0 } from './engine-fixtures.js';
import { decision, opEvent, PHASE_BUILDERS } from './engine-phases.js';

let dir: string;
let db: Db;
let repo: SqliteDeploymentRepository;
const path = () => join(dir, 'fleet.db');

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-engine-repo-'));
  db = openDatabase(path());
  repo = new SqliteDeploymentRepository(db);
});
afterEach(() => {
  closeDatabase(db);
  rmSync(dir, { recursive: true, force: true });
});

function saveWhole(r: SqliteDeploymentRepository, state: DeploymentState): void {
  r.save({ core: state.core, devices: allDevices(state), decisions: [] });
}

function reopen(): SqliteDeploymentRepository {
  closeDatabase(db);
  db = openDatabase(path());
  repo = new SqliteDeploymentRepository(db);
  return repo;
}

describe('SQLite deployment repository', () => {
  it('round-trips a deployment with its devices, waves and decisions through a real file', () => {
    const d = PHASE_BUILDERS.gating!();
    saveWhole(repo, d.state);
    const dec = decision(d.spec, 0, 1, 'Proceed');
    const next = step(d.state, { type: 'gate-result', wave: 0, attempt: 1, decision: dec }, d.now + 1);
    repo.save({ core: next.state.core, devices: next.changedDevices, decisions: [dec] });
    const loaded = reopen().load('dep-1')!;
    expect(loaded.core).toEqual(next.state.core);
    expect(allDevices(loaded).sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual(
      allDevices(next.state).sort((a, b) => a.deviceId.localeCompare(b.deviceId)),
    );
    expect(repo.decisions('dep-1')).toEqual([dec]);
    expect(repo.devices('dep-1', 0)).toHaveLength(3);
    const waves = db.prepare('SELECT wave_index, status, verdict FROM deployment_waves WHERE deployment_id = ? ORDER BY wave_index').all('dep-1');
    expect(waves).toEqual([
      { wave_index: 0, status: 'passed', verdict: 'Proceed' },
      { wave_index: 1, status: 'rolling', verdict: null },
      { wave_index: 2, status: 'pending', verdict: null },
    ]);
    expect(repo.list().map((c) => c.spec.id)).toEqual(['dep-1']);
    expect(repo.list({ phases: ['completed'] })).toEqual([]);
  });

  it('stores the core as JSON that parses to the core, the spec serialised once and shared by later states', () => {
    const d = PHASE_BUILDERS.gating!();
    const dec = decision(d.spec, 0, 1, 'Proceed');
    const next = step(d.state, { type: 'gate-result', wave: 0, attempt: 1, decision: dec }, d.now + 1).state.core;
    expect(next.spec).toBe(d.state.core.spec);
    for (const core of [d.state.core, next]) expect(JSON.parse(coreJson(core))).toEqual(JSON.parse(JSON.stringify(core)));
    expect(coreJson(next)).not.toBe(coreJson(d.state.core));
  });

  it('keeps each gate snapshot under its digest and a device\'s progress across deployments', () => {
    const d = PHASE_BUILDERS.gating!();
    saveWhole(repo, d.state);
    const snapshot = snapshotFromProgress(d.state, 0, d.now);
    repo.saveSnapshot('digest-1', 'dep-1', 0, d.now, snapshot);
    repo.saveSnapshot('digest-1', 'dep-1', 0, d.now + 1, { ...snapshot, takenAt: d.now + 1 }); // once per digest
    const device = allDevices(d.state)[0]!;
    const reopened = reopen();
    expect(reopened.snapshot('digest-1')).toEqual(snapshot);
    expect(reopened.snapshot('nope')).toBeUndefined();
    expect(reopened.deviceHistory(device.deviceId)).toEqual([{ ...device, deploymentId: 'dep-1' }]);
    expect(reopened.deviceHistory('nobody')).toEqual([]);
  });

  it('refuses a save that does not advance the revision', () => {
    const r = createDeployment(makeSpec(), T0, 'alice');
    repo.save({ core: r.state.core, devices: [], decisions: [] });
    expect(() => repo.save({ core: r.state.core, devices: [], decisions: [] })).toThrow(RevisionConflictError);
  });

  it('loads active deployments and the newest finished one per model, not older or final ones', () => {
    const old = createDeployment(makeSpec({}, 'old'), T0, 'a').state;
    saveWhole(repo, { ...old, core: { ...old.core, phase: 'completed' } });
    const gone = createDeployment(makeSpec({}, 'gone'), T0 + 1, 'a').state;
    saveWhole(repo, { ...gone, core: { ...gone.core, spec: { ...gone.core.spec, createdAt: T0 + 1 }, phase: 'aborted' } });
    const newer = createDeployment(makeSpec({}, 'newer'), T0 + 2, 'a').state;
    saveWhole(repo, { ...newer, core: { ...newer.core, spec: { ...newer.core.spec, createdAt: T0 + 2 }, phase: 'completed' } });
    const other = createDeployment(makeSpec({ target: { hardwareModels: ['m2'] } }, 'other'), T0 + 3, 'a').state;
    saveWhole(repo, { ...other, core: { ...other.core, spec: { ...other.core.spec, createdAt: T0 + 3 } } });
    expect(repo.loadLive().map((s) => s.core.spec.id)).toEqual(['newer', 'other']);
  });
});

describe('restart in every state (persisted state resumes exactly)', () => {
  const probes: [string, (s: DeploymentState) => EngineEvent][] = [
    ['a tick far in the future', () => ({ type: 'tick' })],
    ['an abort', () => opEvent({ type: 'abort', rollback: true })],
    ['a promote', () => opEvent({ type: 'promote' })],
  ];
  for (const [name, build] of Object.entries(PHASE_BUILDERS)) {
    it(`${name}: the reloaded state equals the live one and steps identically`, () => {
      const d = build();
      saveWhole(repo, d.state);
      const loaded = reopen().load('dep-1')!;
      expect(loaded.core).toEqual(d.state.core);
      expect(recount(loaded.core, allDevices(loaded))).toEqual(loaded.core.waves.map((w) => w.counts));
      expect(reconcile(loaded, d.now + 1)).toEqual(reconcile(d.state, d.now + 1));
      for (const [, probe] of probes) {
        const later = d.now + 3 * HOUR;
        const a = step(d.state, probe(d.state), later);
        const b = step(loaded, probe(loaded), later);
        expect(b.state.core).toEqual(a.state.core);
        expect(b.effects).toEqual(a.effects);
        expect(b.rejected).toEqual(a.rejected);
      }
    });
  }
});
