/**
 * The deployment repository on both stores: round trips through a real file or a real PostgreSQL
 * database (closed and opened again), the revision guard, live deployments, and a restart in every
 * state of the engine resuming exactly.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { coreJson, RevisionConflictError, SqlDeploymentRepository } from '../../coordinator/deployments/deployment-repo.js';
import { allDevices, recount } from '../../coordinator/engine/device-progress.js';
import { createDeployment, reconcile, step } from '../../coordinator/engine/engine.js';
import { snapshotFromProgress } from '../../coordinator/engine/snapshot.js';
import type { DeploymentState, EngineEvent } from '../../coordinator/engine/types.js';
import type { Sql } from '../../coordinator/store/sql.js';
import { durableStoreOpener, STORE_KINDS, type StoreKind } from '../support/postgres.js';
import { HOUR, makeSpec, T0 } from './engine-fixtures.js';
import { decision, opEvent, PHASE_BUILDERS } from './engine-phases.js';

/** A repository on a durable store of `kind`, and a way to close and open that store again. */
async function durableRepo(kind: StoreKind): Promise<{ repo: SqlDeploymentRepository; sql: () => Sql; reopen: () => Promise<SqlDeploymentRepository> }> {
  const open = await durableStoreOpener(kind);
  let current = await open();
  onTestFinished(() => current.close());
  return {
    repo: new SqlDeploymentRepository(current),
    sql: () => current,
    reopen: async () => {
      await current.close();
      current = await open();
      return new SqlDeploymentRepository(current);
    },
  };
}

async function saveWhole(r: SqlDeploymentRepository, state: DeploymentState): Promise<void> {
  await r.save({ core: state.core, devices: allDevices(state), decisions: [] });
}

describe.each(STORE_KINDS)('deployment repository on %s', (kind) => {
  it('round-trips a deployment with its devices, waves and decisions through the store, closed and opened again', async () => {
    const store = await durableRepo(kind);
    let repo = store.repo;
    const { sql, reopen } = store;
    const d = PHASE_BUILDERS.gating!();
    await saveWhole(repo, d.state);
    const dec = decision(d.spec, 0, 1, 'Proceed');
    const next = step(d.state, { type: 'gate-result', wave: 0, attempt: 1, decision: dec }, d.now + 1);
    await repo.save({ core: next.state.core, devices: next.changedDevices, decisions: [dec] });
    repo = await reopen();
    const loaded = (await repo.load('dep-1'))!;
    expect(loaded.core).toEqual(next.state.core);
    expect(allDevices(loaded).sort((a, b) => a.deviceId.localeCompare(b.deviceId))).toEqual(
      allDevices(next.state).sort((a, b) => a.deviceId.localeCompare(b.deviceId)),
    );
    expect(await repo.decisions('dep-1')).toEqual([dec]);
    expect(await repo.devices('dep-1', 0)).toHaveLength(3);
    const waves = await sql().all('SELECT wave_index, status, verdict FROM deployment_waves WHERE deployment_id = ? ORDER BY wave_index', ['dep-1']);
    expect(waves).toEqual([
      { wave_index: 0, status: 'passed', verdict: 'Proceed' },
      { wave_index: 1, status: 'rolling', verdict: null },
      { wave_index: 2, status: 'pending', verdict: null },
    ]);
    expect((await repo.list()).map((c) => c.spec.id)).toEqual(['dep-1']);
    expect(await repo.list({ phases: ['completed'] })).toEqual([]);
  });

  it('stores the core as JSON that parses to the core, the spec serialised once and shared by later states', () => {
    const d = PHASE_BUILDERS.gating!();
    const dec = decision(d.spec, 0, 1, 'Proceed');
    const next = step(d.state, { type: 'gate-result', wave: 0, attempt: 1, decision: dec }, d.now + 1).state.core;
    expect(next.spec).toBe(d.state.core.spec);
    for (const core of [d.state.core, next]) expect(JSON.parse(coreJson(core))).toEqual(JSON.parse(JSON.stringify(core)));
    expect(coreJson(next)).not.toBe(coreJson(d.state.core));
  });

  it('keeps each gate snapshot under its digest and a device\'s progress across deployments', async () => {
    const { repo, reopen } = await durableRepo(kind);
    const d = PHASE_BUILDERS.gating!();
    await saveWhole(repo, d.state);
    const snapshot = snapshotFromProgress(d.state, 0, d.now);
    await repo.saveSnapshot('digest-1', 'dep-1', 0, d.now, snapshot);
    await repo.saveSnapshot('digest-1', 'dep-1', 0, d.now + 1, { ...snapshot, takenAt: d.now + 1 }); // once per digest
    const device = allDevices(d.state)[0]!;
    const reopened = await reopen();
    expect(await reopened.snapshot('digest-1')).toEqual(snapshot);
    expect(await reopened.snapshot('nope')).toBeUndefined();
    expect(await reopened.deviceHistory(device.deviceId)).toEqual([{ ...device, deploymentId: 'dep-1' }]);
    expect(await reopened.deviceHistory('nobody')).toEqual([]);
  });

  it('refuses a save that does not advance the revision', async () => {
    const { repo } = await durableRepo(kind);
    const r = createDeployment(makeSpec(), T0, 'alice');
    await repo.save({ core: r.state.core, devices: [], decisions: [] });
    await expect(repo.save({ core: r.state.core, devices: [], decisions: [] })).rejects.toThrow(RevisionConflictError);
  });

  it('loads active deployments and the newest finished one per model, not older or final ones', async () => {
    const { repo } = await durableRepo(kind);
    const old = createDeployment(makeSpec({}, 'old'), T0, 'a').state;
    await saveWhole(repo, { ...old, core: { ...old.core, phase: 'completed' } });
    const gone = createDeployment(makeSpec({}, 'gone'), T0 + 1, 'a').state;
    await saveWhole(repo, { ...gone, core: { ...gone.core, spec: { ...gone.core.spec, createdAt: T0 + 1 }, phase: 'aborted' } });
    const newer = createDeployment(makeSpec({}, 'newer'), T0 + 2, 'a').state;
    await saveWhole(repo, { ...newer, core: { ...newer.core, spec: { ...newer.core.spec, createdAt: T0 + 2 }, phase: 'completed' } });
    const other = createDeployment(makeSpec({ target: { hardwareModels: ['m2'] } }, 'other'), T0 + 3, 'a').state;
    await saveWhole(repo, { ...other, core: { ...other.core, spec: { ...other.core.spec, createdAt: T0 + 3 } } });
    expect((await repo.loadLive()).map((s) => s.core.spec.id)).toEqual(['newer', 'other']);
  });
});

describe.each(STORE_KINDS)('restart in every state on %s (persisted state resumes exactly)', (kind) => {
  const probes: [string, (s: DeploymentState) => EngineEvent][] = [
    ['a tick far in the future', () => ({ type: 'tick' })],
    ['an abort', () => opEvent({ type: 'abort', rollback: true })],
    ['a promote', () => opEvent({ type: 'promote' })],
  ];
  for (const [name, build] of Object.entries(PHASE_BUILDERS)) {
    it(`${name}: the reloaded state equals the live one and steps identically`, async () => {
      const { repo, reopen } = await durableRepo(kind);
      const d = build();
      await saveWhole(repo, d.state);
      const loaded = (await (await reopen()).load('dep-1'))!;
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
