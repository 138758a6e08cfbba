import { describe, expect, it } from 'vitest';
import { bucketsOfWave } from '../../coordinator/engine/wave-plan.js';
import { explainNoMatch, smallWaveWarnings } from '../../coordinator/deployments/creation-warnings.js';
import { defaultWaves } from '../../coordinator/engine/deployment-spec.js';
import { createDeployment, nextWakeAt, reconcile, step } from '../../coordinator/engine/engine.js';
import { recount } from '../../coordinator/engine/device-progress.js';
import { allDevices } from '../../coordinator/engine/device-progress.js';
import { devicesInWave, hello, HOUR, makeSpec, members, MIN, ofType, status, T0 } from './engine-fixtures.js';
import { decision, Drive, gating, held, opEvent, PHASE_BUILDERS, rolling, rollingBack, soaking, W0 } from './engine-phases.js';
import type { EngineEvent, OperatorAction } from '../../coordinator/engine/types.js';
import { DecisionRecordSchema } from '../../coordinator/gate/decision.js';

function countsConsistent(d: Drive): void {
  expect(recount(d.state.core, allDevices(d.state))).toEqual(d.state.core.waves.map((w) => w.counts));
}

describe('deployment creation: canary waves too small to judge', () => {
  it('warns about an empty canary wave and one with fewer devices than it needs reporting, never about the last wave', () => {
    const spec = makeSpec({ waves: defaultWaves([1, 5, 100], 30 * MIN, { minDevicesReporting: 20, deadlineMs: HOUR }) });
    const warnings = smallWaveWarnings(spec, [0, 12, 3], 300);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^wave 1 \(1 %\) covers none of the 300 known devices in the target: it passes empty and wave 2 \(5 %\) will be the first canary/);
    expect(warnings[1]).toMatch(/^wave 2 \(5 %\) covers 12 of the 300 known devices in the target, fewer than the 20 it needs reporting: its gate will judge on 12 devices/);
    expect(smallWaveWarnings(spec, [20, 40], 300)).toEqual([]);
    // A wave that needs no devices reporting is never too small.
    expect(smallWaveWarnings(makeSpec({ waves: defaultWaves([1, 100], 0, { minDevicesReporting: 0, deadlineMs: HOUR }) }), [0], 5)).toEqual([]);
  });

  it('names the first wave with devices as the first canary only when no earlier wave has one', () => {
    const spec = makeSpec({ waves: defaultWaves([1, 5, 25, 100], 30 * MIN, { minDevicesReporting: 1, deadlineMs: HOUR }) });
    // Wave 2 holds the only device: wave 3 being empty says nothing about who is judged first.
    expect(smallWaveWarnings(spec, [0, 1, 0, 0], 1)).toEqual([
      'wave 1 (1 %) covers none of the 1 known device in the target: it passes empty and wave 2 (5 %) will be the first canary; give the first wave a larger share (--waves)',
    ]);
    // Every canary wave empty: the last wave reaches the device with no canary first.
    expect(smallWaveWarnings(spec, [0, 0, 0, 1], 1)).toEqual([
      'wave 1 (1 %) covers none of the 1 known device in the target: it passes empty and no canary wave has a device, so wave 4 (100 %) reaches them all without a canary judging the release first; give the first wave a larger share (--waves)',
    ]);
  });

  it('warns that a single 100 % wave has no canary', () => {
    const spec = makeSpec({ waves: defaultWaves([100], 30 * MIN, { minDevicesReporting: 1, deadlineMs: HOUR }) });
    expect(smallWaveWarnings(spec, [3], 3)).toEqual([
      'a single 100 % wave has no canary: every device in the target (3 known devices now) gets the firmware at once, and only the hard limits judge it afterwards; with more devices use canary waves (--waves 1,5,25,100)',
    ]);
  });
});

describe('deployment creation: a target that matches no known device', () => {
  const spec = { firmwareVersion: '1.1.0', target: { hardwareModels: ['rpi4'], versionRange: '>=2.0.0', tags: ['lab'] } };
  const device = (deviceId: string, hardwareModel: string, firmwareVersion: string, tags: string[] = []) => ({ deviceId, hardwareModel, firmwareVersion, tags });

  it('says no device has connected yet when none is known', () => {
    expect(explainNoMatch(spec, [])).toMatch(/^no device has connected yet, so none matches the target \(models rpi4, versions >=2\.0\.0, tags lab\); .*start their agents/);
  });

  it('counts the known devices by the option that excludes them, instead of advising to provision', () => {
    const message = explainNoMatch(spec, [device('a', 'cm4', '2.0.0'), device('b', 'rpi4', '1.0.0'), device('c', 'rpi4', '1.2.0'), device('d', 'rpi4', '2.1.0')]);
    expect(message).toBe(
      'no known device matches the target (models rpi4, versions >=2.0.0, tags lab): of the 4 known, 1 is another hardware model (--target), ' +
        "2 run a version outside >=2.0.0 (--from), 1 lacks the tags lab (--tags); change the target (`fleet devices list` shows each device's model, version and tags)",
    );
    expect(message).not.toMatch(/provision/);
  });
});

describe('engine: creation and wave start', () => {
  it('starts wave 0 at once: publishes the manifest retained on its buckets, asks for members, wakes at the deadline', () => {
    const spec = makeSpec();
    const r = createDeployment(spec, T0, 'alice');
    expect(r.state.core.phase).toBe('rolling');
    const pubs = ofType(r.effects, 'publish-rollout');
    expect(pubs).toHaveLength(1);
    expect(pubs[0]!.buckets).toEqual(bucketsOfWave(spec, 0));
    expect(pubs[0]!.buckets).toHaveLength(Math.ceil(0.1 * 1024));
    expect(pubs[0]!.message).toMatchObject({ kind: 'rollout', deploymentId: 'dep-1', wave: 0, manifest: spec.manifest });
    expect(ofType(r.effects, 'request-members')).toEqual([{ type: 'request-members', wave: 0, buckets: bucketsOfWave(spec, 0) }]);
    expect(ofType(r.effects, 'schedule-wake')).toEqual([{ type: 'schedule-wake', at: T0 + HOUR }]);
  });

  it('waves are nested and disjoint: each adds new buckets', () => {
    const spec = makeSpec();
    const all = [0, 1, 2].flatMap((w) => bucketsOfWave(spec, w));
    expect(new Set(all).size).toBe(1024);
  });

  it('a draft waits for start; a scheduled deployment waits for its start time', () => {
    const draft = Drive.create(makeSpec({ draft: true }));
    expect(draft.phase).toBe('draft');
    expect(draft.last.effects.some((e) => e.type === 'publish-rollout')).toBe(false);
    expect(draft.op({ type: 'start' }).state.core.phase).toBe('rolling');

    const sched = Drive.create(makeSpec({ startAt: T0 + HOUR }));
    expect(sched.phase).toBe('scheduled');
    expect(nextWakeAt(sched.state, T0)).toBe(T0 + HOUR);
    expect(sched.at(T0 + HOUR - 1).ev({ type: 'tick' }).state.core.phase).toBe('scheduled');
    expect(sched.at(T0 + HOUR).ev({ type: 'tick' }).state.core.phase).toBe('rolling');
  });

  it('a wave that requires approval waits for it, and approval can be given ahead of time', () => {
    const spec = makeSpec({ waves: [{ percent: 10, minDevicesReporting: 0 }, { percent: 100, requiresApproval: true, minDevicesReporting: 0 }] });
    const d = Drive.create(spec);
    d.ev({ type: 'wave-members', wave: 0, members: members(W0(spec)) });
    d.op({ type: 'approve' }); // approves wave 1 ahead of time
    expect(d.state.core.approvals).toEqual([1]);
    d.statuses(W0(spec), 'committed');
    d.op({ type: 'promote' }); // skips the soak
    expect(d.phase).toBe('gating');
    d.ev({ type: 'gate-result', wave: 0, attempt: 1, decision: decision(spec, 0, 1, 'Proceed') });
    expect(d.phase).toBe('rolling');
    expect(d.state.core.current).toBe(1);

    // An empty wave 0 passes at once; wave 1 then waits for its approval.
    const e = Drive.create(spec);
    e.ev({ type: 'wave-members', wave: 0, members: [] });
    expect(e.phase).toBe('pending');
    expect(e.state.core.waitingFor).toEqual(['approval']);
    expect(e.op({ type: 'promote' }).rejected?.code).toBe('needs-approval');
    e.op({ type: 'approve', wave: 1 });
    expect(e.phase).toBe('rolling');
    expect(e.state.core.waves[1]!.approvedBy).toBe('operator:alice');
  });

  it('waves start only inside a maintenance window; the engine wakes when the next one opens', () => {
    // Nightly 02:00 UTC for 2 hours; T0 is noon.
    const spec = makeSpec({ maintenanceWindows: [{ cron: '0 2 * * *', durationMs: 2 * HOUR }] });
    const d = Drive.create(spec);
    expect(d.phase).toBe('pending');
    expect(d.state.core.waitingFor).toEqual(['window']);
    const open = Date.UTC(2026, 0, 6, 2, 0, 0);
    expect(ofType(d.last.effects, 'schedule-wake')).toEqual([{ type: 'schedule-wake', at: open }]);
    expect(d.at(open - 1000).ev({ type: 'tick' }).state.core.phase).toBe('pending');
    expect(d.at(open + 5 * MIN).ev({ type: 'tick' }).state.core.phase).toBe('rolling');
    d.ev({ type: 'wave-members', wave: 0, members: members(W0(spec)) });
    // A started wave runs on after the window closes.
    expect(d.at(open + 3 * HOUR).ev({ type: 'tick' }).state.core.phase).not.toBe('pending');
  });

  it('promote starts a wave outside its window (an operator override, audited)', () => {
    const d = Drive.create(makeSpec({ maintenanceWindows: [{ cron: '0 2 * * *', durationMs: HOUR }] }));
    const r = d.op({ type: 'promote' });
    expect(r.state.core.phase).toBe('rolling');
    expect(ofType(r.effects, 'audit').map((a) => a.entry.action)).toContain('deployment.promoted');
  });
});

describe('engine: device progress and wave completion', () => {
  it('completes a wave when every member finished, soaks, then asks the gate', () => {
    const d = rolling();
    const ids = W0(d.spec);
    expect(d.state.core.waves[0]!.counts).toMatchObject({ tracked: 3, waiting: 3 });
    d.at(T0 + MIN).statuses(ids, 'downloading');
    expect(d.state.core.waves[0]!.counts).toMatchObject({ inProgress: 3, reporting: 3, waiting: 0 });
    d.statuses(ids.slice(0, 2), 'committed');
    expect(d.phase).toBe('rolling');
    d.statuses(ids.slice(2), 'committed');
    expect(d.phase).toBe('soaking');
    expect(d.state.core.waves[0]!.soakEndsAt).toBe(T0 + MIN + 30 * MIN);
    countsConsistent(d);
    expect(d.at(T0 + 30 * MIN).ev({ type: 'tick' }).state.core.phase).toBe('soaking');
    const r = d.at(T0 + 31 * MIN).ev({ type: 'tick' });
    expect(r.state.core.phase).toBe('gating');
    expect(ofType(r.effects, 'run-gate')).toEqual([{ type: 'run-gate', wave: 0, attempt: 1 }]);
  });

  it('silent devices past the wave deadline time out and count as failed; the wave never stays in progress', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.at(T0 + MIN).statuses(ids.slice(0, 1), 'committed');
    d.statuses(ids.slice(1, 2), 'installing');
    expect(d.phase).toBe('rolling');
    const r = d.at(T0 + HOUR).ev({ type: 'tick' });
    expect(r.state.core.phase).toBe('soaking');
    expect(r.state.core.waves[0]!.counts).toMatchObject({ committed: 1, timedOut: 2, inProgress: 0, waiting: 0 });
    expect(r.changedDevices.filter((x) => x.timedOut)).toHaveLength(2);
    countsConsistent(d);
  });

  it('needs membership before a wave can complete, and offline members are not waited for', () => {
    const d = Drive.create();
    const ids = W0(d.spec);
    d.at(T0 + MIN).statuses(ids.slice(0, 1), 'committed');
    expect(d.phase).toBe('rolling'); // membership not known yet
    d.ev({ type: 'wave-members', wave: 0, members: [...members(ids.slice(0, 2)), ...members(ids.slice(2), false)] });
    expect(d.state.core.waves[0]!.counts).toMatchObject({ tracked: 3, committed: 1, waiting: 1, offline: 1 });
    d.statuses(ids.slice(1, 2), 'committed');
    expect(d.phase).toBe('soaking');
  });

  it('an offline member that comes online is waited for', () => {
    const d = Drive.create();
    const ids = W0(d.spec);
    d.ev({ type: 'wave-members', wave: 0, members: members(ids, false) });
    d.ev({ type: 'device-presence', deviceId: ids[0]!, online: true });
    expect(d.state.core.waves[0]!.counts).toMatchObject({ waiting: 1, offline: 2 });
    d.statuses(ids.slice(0, 1), 'committed');
    expect(d.phase).toBe('soaking');
  });

  it('tracks late devices: a hello from a matching device after the wave started, and an unknown reporter', () => {
    const d = rolling();
    const extra = devicesInWave(d.spec, 0, 5).slice(3);
    d.ev({ type: 'device-hello', hello: hello(extra[0]!, '1.5.0') });
    const late = d.state.devices[allDevices(d.state).find((x) => x.deviceId === extra[0])!.bucket]![extra[0]!]!;
    expect(late).toMatchObject({ late: true, state: 'pending', online: true, runningVersion: '1.5.0' });
    // A device outside the version range is not tracked.
    const other = devicesInWave(d.spec, 0, 6)[5]!;
    d.ev({ type: 'device-hello', hello: hello(other, '3.0.0') });
    expect(allDevices(d.state).some((x) => x.deviceId === other)).toBe(false);
    // A status from a device nobody announced is tracked too.
    d.statuses([extra[1]!], 'downloading');
    expect(d.state.core.waves[0]!.counts.tracked).toBe(5);
    countsConsistent(d);
  });

  it('ignores duplicate and reordered statuses by sequence number', () => {
    const d = rolling();
    const id = W0(d.spec)[0]!;
    d.ev({ type: 'device-status', status: status(id, 'installing', { seq: 10, at: T0 + 10 }) });
    const r = d.ev({ type: 'device-status', status: status(id, 'downloading', { seq: 9, at: T0 + 5 }) });
    expect(r.state).toBe(d.state);
    expect(allDevices(d.state).find((x) => x.deviceId === id)!.state).toBe('installing');
  });

  it('ineligible devices (wrong version) neither pass nor fail', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.statuses(ids.slice(0, 1), 'rejected', 'version-not-installable');
    d.statuses(ids.slice(1), 'committed');
    expect(d.phase).toBe('soaking');
    expect(d.state.core.waves[0]!.counts).toMatchObject({ ineligible: 1, failed: 0, committed: 2 });
  });
});

describe('engine: empty waves', () => {
  const three = () => makeSpec({ waves: [1, 50, 100].map((percent) => ({ percent, minDevicesReporting: 1, deadlineMs: HOUR })) });
  const emptyWaveDecisions = (r: { effects: readonly Parameters<typeof ofType>[0][number][] }) =>
    ofType(r.effects, 'record-decision').map((e) => e.decision).filter((x) => x.source === 'empty-wave');

  const cases: { name: string; drive: (d: Drive) => void; phase: string; current: number; passed: number[] }[] = [
    {
      name: 'members delivered and none: passes at once to the next wave',
      drive: (d) => d.ev({ type: 'wave-members', wave: 0, members: [] }),
      phase: 'rolling',
      current: 1,
      passed: [0],
    },
    {
      name: 'membership never delivered: passes at its deadline',
      drive: (d) => d.at(T0 + HOUR).ev({ type: 'tick' }),
      phase: 'rolling',
      current: 1,
      passed: [0],
    },
    {
      name: 'an operator promotes a rolling empty wave: it passes, no gate',
      drive: (d) => d.op({ type: 'promote' }),
      phase: 'rolling',
      current: 1,
      passed: [0],
    },
    {
      name: 'every wave empty: the deployment completes',
      drive: (d) => {
        for (const w of [0, 1, 2]) d.ev({ type: 'wave-members', wave: w, members: [] });
      },
      phase: 'completed',
      current: 2,
      passed: [0, 1, 2],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = Drive.create(three());
      const effects: Parameters<typeof ofType>[0][number][] = [];
      const ev = d.ev.bind(d);
      d.ev = (e) => {
        const r = ev(e);
        effects.push(...r.effects);
        return r;
      };
      c.drive(d);
      expect(d.phase).toBe(c.phase);
      expect(d.state.core.current).toBe(c.current);
      expect(d.state.core.waves.filter((w) => w.status === 'passed').map((w) => w.index)).toEqual(c.passed);
      // No gate ran for an empty wave; each has its own decision saying why.
      expect(ofType(effects, 'run-gate')).toEqual([]);
      const recorded = emptyWaveDecisions({ effects });
      expect(recorded.map((x) => x.wave)).toEqual(c.passed);
      for (const x of recorded) {
        expect(DecisionRecordSchema.parse(x)).toEqual(x);
        expect(x).toMatchObject({ source: 'empty-wave', analyzers: [], final: { recommendation: 'Proceed', rule: 'empty-wave' } });
        expect(x.final.issues[0]).toContain('has no devices');
        expect(d.state.core.waves[x.wave]).toMatchObject({ verdict: 'Proceed', decisionId: x.id });
      }
      expect(new Set(recorded.map((x) => x.id)).size).toBe(recorded.length);
    });
  }

  it('a wave whose members are all offline is not empty: it waits for its deadline and goes to the gate', () => {
    const d = Drive.create(three());
    d.ev({ type: 'wave-members', wave: 0, members: members(devicesInWave(d.spec, 0, 2), false) });
    expect(d.phase).toBe('rolling');
    const r = d.at(T0 + HOUR).ev({ type: 'tick' });
    expect(d.phase).toBe('gating');
    expect(ofType(r.effects, 'run-gate')).toHaveLength(1);
    expect(ofType(r.effects, 'record-decision')).toEqual([]);
  });

  it('a device arriving late in an empty wave\'s buckets is still tracked in that wave', () => {
    const d = Drive.create(three());
    d.ev({ type: 'wave-members', wave: 0, members: [] });
    expect(d.state.core.current).toBe(1);
    const late = devicesInWave(d.spec, 0, 1)[0]!;
    d.ev({ type: 'device-hello', hello: hello(late, '1.0.0') });
    expect(allDevices(d.state).find((x) => x.deviceId === late)).toMatchObject({ wave: 0, late: true });
    expect(d.state.core.waves[0]!.counts.tracked).toBe(1);
    // Its status still counts, and the passed wave stays passed.
    d.statuses([late], 'committed');
    expect(d.state.core.waves[0]!.counts.committed).toBe(1);
    expect(d.state.core.waves[0]!.status).toBe('passed');
    countsConsistent(d);
  });
});

describe('engine: gate decisions', () => {
  it('Proceed moves to the next wave and finally completes', () => {
    const d = gating();
    d.ev({ type: 'gate-result', wave: 0, attempt: 1, decision: decision(d.spec, 0, 1, 'Proceed') });
    expect(d.phase).toBe('rolling');
    expect(d.state.core.current).toBe(1);
    expect(ofType(d.last.effects, 'publish-rollout')[0]!.buckets).toEqual(bucketsOfWave(d.spec, 1));
    expect(ofType(d.last.effects, 'record-decision')).toHaveLength(1);
    expect(PHASE_BUILDERS.completed!().phase).toBe('completed');
  });

  it('Monitor extends the soak up to the limit, then holds for an operator', () => {
    const d = held();
    expect(d.phase).toBe('soaking');
    expect(d.state.core.pause).toMatchObject({ cause: 'monitor-limit' });
    expect(d.state.core.waves[0]!.monitorCount).toBe(d.spec.monitor.maxExtensions + 1);
    // Held: only its manifest's renewal (half-way through the manifest's 7 days) wakes it.
    expect(nextWakeAt(d.state, d.now)).toBe(T0 + 3.5 * 24 * HOUR);
    expect(d.ev({ type: 'tick' }).state.core.phase).toBe('soaking');
    // promote = an operator Proceed, recorded as a decision
    const r = d.op({ type: 'promote' });
    expect(r.state.core.phase).toBe('rolling');
    expect(ofType(r.effects, 'record-decision')[0]!.decision).toMatchObject({ source: 'operator', final: { recommendation: 'Proceed' } });
  });

  it('resume after a Monitor hold judges the wave again with fresh extensions', () => {
    const d = held();
    const r = d.op({ type: 'resume' });
    expect(r.state.core.phase).toBe('gating');
    expect(r.state.core.waves[0]!.monitorCount).toBe(0);
  });

  it('with onLimit abort the Monitor limit aborts and rolls back, recording an Abort decision', () => {
    const d = Drive.create(makeSpec({ monitor: { maxExtensions: 0, onLimit: 'abort' } }));
    d.ev({ type: 'wave-members', wave: 0, members: members(W0(d.spec)) });
    d.statuses(W0(d.spec), 'committed');
    d.at(T0 + HOUR).ev({ type: 'tick' });
    const monitor = decision(d.spec, 0, 1, 'Monitor');
    const r = d.ev({ type: 'gate-result', wave: 0, attempt: 1, decision: monitor });
    expect(d.phase).toBe('rolling-back');
    // Both are on the record: the gate's Monitor, then the engine's Abort at the limit.
    const recorded = ofType(r.effects, 'record-decision').map((e) => e.decision);
    expect(recorded.map((x) => [x.source, x.final.recommendation])).toEqual([['gate', 'Monitor'], ['monitor-limit', 'Abort']]);
    const abort = recorded[1]!;
    expect(DecisionRecordSchema.parse(abort)).toEqual(abort);
    expect(abort).toMatchObject({ wave: 0, attempt: 1, at: T0 + HOUR, inputsDigest: monitor.inputsDigest, analyzers: [], final: { rule: 'monitor-limit', riskLevel: 'High' } });
    expect(abort.final.issues[0]).toContain('Monitor more than 0 times');
    expect(abort.id).not.toBe(monitor.id);
    expect(d.state.core.waves[0]).toMatchObject({ verdict: 'Abort', decisionId: abort.id, status: 'aborted' });
    expect(d.state.core.abortReason).toBe('the gate said Monitor more than 0 times');
    // With onLimit pause nothing is recorded beyond the gate's own Monitor.
    const h = held();
    expect(ofType(h.last.effects, 'record-decision').map((e) => e.decision.source)).toEqual(['gate']);
  });

  it('a stale gate result (old attempt or wrong phase) is recorded but changes nothing', () => {
    const d = gating();
    const r = d.ev({ type: 'gate-result', wave: 0, attempt: 7, decision: decision(d.spec, 0, 7, 'Abort') });
    expect(r.state.core.phase).toBe('gating');
    expect(ofType(r.effects, 'record-decision')).toHaveLength(1);
  });

  it('Abort clears the retained topics and sends a rollback command to every exposed device', () => {
    const d = gating();
    const r = d.ev({ type: 'gate-result', wave: 0, attempt: 1, decision: decision(d.spec, 0, 1, 'Abort') });
    expect(r.state.core.phase).toBe('rolling-back');
    expect(ofType(r.effects, 'clear-rollout')[0]!.buckets).toEqual(bucketsOfWave(d.spec, 0));
    const cmds = ofType(r.effects, 'send-command');
    expect(cmds.map((c) => c.command.deviceId).sort()).toEqual([...W0(d.spec)].sort());
    expect(new Set(cmds.map((c) => c.command.commandId)).size).toBe(3);
    expect(r.state.core.rollback).toMatchObject({ exposed: 3, confirmed: 0 });
    expect(r.state.core.waves[0]!.status).toBe('aborted');
    expect(r.state.core.waves[1]!.status).toBe('skipped');
  });
});

describe('engine: early hard limits', () => {
  it('a trial-boot failure aborts at once, without waiting for the soak', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.statuses(ids.slice(0, 2), 'trial');
    const r = d.statuses(ids.slice(2), 'rolled-back', 'trial-boot-failed');
    expect(r.state.core.phase).toBe('rolling-back');
    const dec = ofType(r.effects, 'record-decision')[0]!.decision;
    expect(dec).toMatchObject({ source: 'early-hard-limit', final: { recommendation: 'Abort', rule: 'hard-limit:trial-failures (early)' } });
    // The two devices in trial are exposed; the one that fell back is not sent a command.
    expect(ofType(r.effects, 'send-command').map((c) => c.command.deviceId).sort()).toEqual(ids.slice(0, 2).sort());
  });

  it('a hello that reports a fallen-back trial before its status arrives counts as a trial failure, not as ineligible', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.statuses(ids, 'rebooting');
    // After the fallback the agent reconnects: its hello (with the reason) comes before the queued status.
    const r = d.ev({ type: 'device-hello', hello: hello(ids[0]!, '1.0.0', { deploymentId: d.spec.id, state: 'rolled-back', toVersion: '2.0.0', reason: 'trial-boot-failed' }) });
    expect(r.state.core.phase).toBe('rolling-back');
    expect(ofType(r.effects, 'record-decision')[0]!.decision).toMatchObject({ source: 'early-hard-limit', final: { rule: 'hard-limit:trial-failures (early)' } });
  });

  it('a hello older than the committed status it preceded (delivered late) leaves the device committed', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.at(T0 + MIN).statuses(ids, 'committed');
    // Sent before the commit (device clock T0), read after it: replicas store and deliver by different paths.
    const r = d.ev({ type: 'device-hello', hello: hello(ids[0]!, '2.0.0', { deploymentId: d.spec.id, state: 'trial', toVersion: '2.0.0' }) });
    expect(r.state.core.waves[0]!.counts).toMatchObject({ committed: ids.length, inProgress: 0 });
  });

  it('a hello stamped in the same millisecond as the committed status (a clock that stood still) leaves the device committed', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.at(T0 + MIN).statuses(ids, 'committed');
    // The agent said hello while committing (reported as trial), then committed; its clock had not moved
    // between the two. The hello carries no sequence number: it cannot be told newer than the status.
    const r = d.ev({ type: 'device-hello', hello: { ...hello(ids[0]!, '2.0.0', { deploymentId: d.spec.id, state: 'trial', toVersion: '2.0.0' }), at: T0 + MIN } });
    expect(r.state.core.waves[0]!.counts).toMatchObject({ committed: ids.length, inProgress: 0 });
    expect(r.state.core.phase).toBe('soaking');
  });

  it('a reasonless hello (an older agent) does not turn an update in progress into an outcome; the status decides', () => {
    const d = rolling();
    const ids = W0(d.spec);
    d.statuses(ids, 'rebooting');
    const r = d.ev({ type: 'device-hello', hello: hello(ids[0]!, '1.0.0', { deploymentId: d.spec.id, state: 'rolled-back', toVersion: '2.0.0' }) });
    expect(r.state.core.phase).toBe('rolling');
    expect(r.state.core.waves[0]!.counts).toMatchObject({ inProgress: ids.length, ineligible: 0 });
    const after = d.statuses(ids.slice(0, 1), 'rolled-back', 'trial-boot-failed');
    expect(after.state.core.phase).toBe('rolling-back');
  });

  it('install failures above the share of the whole wave abort early', () => {
    const spec = makeSpec({ gatePolicy: { maxInstallFailureShare: 0.5 } });
    const d = Drive.create(spec);
    const ids = devicesInWave(spec, 0, 4);
    d.ev({ type: 'wave-members', wave: 0, members: members(ids) });
    d.statuses(ids.slice(0, 2), 'failed', 'hash-mismatch');
    expect(d.phase).toBe('rolling'); // 2 of 4 = 50 %, not above
    d.statuses(ids.slice(2, 3), 'failed', 'download-failed');
    // Nobody has the image on a slot: the rollback has nothing to track and ends at once.
    expect(d.phase).toBe('rolled-back');
    expect(d.state.core.rollback).toMatchObject({ exposed: 0 });
    expect(ofType(d.last.effects, 'clear-rollout')).toHaveLength(1);
  });
});

describe('engine: rollback tracking', () => {
  it('tracks each exposed device until it reports its old version', () => {
    const d = rollingBack();
    const ids = W0(d.spec);
    d.statuses(ids.slice(0, 1), 'rolling-back', 'rollback-command');
    expect(d.state.core.rollback).toMatchObject({ confirmed: 0 });
    d.statuses(ids.slice(0, 1), 'rolled-back', 'rollback-command');
    expect(d.state.core.rollback).toMatchObject({ confirmed: 1 });
    d.ev({ type: 'device-hello', hello: hello(ids[1]!, '1.0.0') });
    expect(d.state.core.rollback).toMatchObject({ confirmed: 2 });
    expect(d.phase).toBe('rolling-back');
    d.statuses(ids.slice(2), 'rolled-back', 'rollback-command');
    expect(d.phase).toBe('rolled-back');
    expect(d.state.core.rollback).toMatchObject({ exposed: 3, confirmed: 3, unreachable: 0 });
  });

  it('a rolled-back report leaves the device on the version in its toVersion, the one it ran before', () => {
    const d = rolling();
    const [id] = W0(d.spec);
    d.statuses([id!], 'trial');
    expect(allDevices(d.state).find((x) => x.deviceId === id)).toMatchObject({ runningVersion: '2.0.0', fromVersion: '1.0.0' });
    // The agent reports fromVersion 2.0.0 (abandoned) and toVersion 1.0.0 (running again).
    d.statuses([id!], 'rolled-back', 'trial-boot-failed');
    expect(allDevices(d.state).find((x) => x.deviceId === id)).toMatchObject({ state: 'rolled-back', runningVersion: '1.0.0', fromVersion: '1.0.0' });
  });

  it('re-sends the command when a device reconnects still on the new version, with a new id, bounded', () => {
    const d = rollingBack();
    const id = W0(d.spec)[0]!;
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = d.ev({ type: 'device-hello', hello: hello(id, '2.0.0') });
      for (const c of ofType(r.effects, 'send-command')) ids.add(c.command.commandId);
    }
    expect(ids.size).toBe(d.spec.rollback.maxCommandAttempts - 1);
  });

  it('marks devices unreachable after the rollback deadline; a late one still confirms', () => {
    const d = rollingBack();
    const ids = W0(d.spec);
    d.statuses(ids.slice(0, 1), 'rolled-back', 'rollback-command');
    const deadline = d.state.core.rollback!.deadlineAt;
    expect(nextWakeAt(d.state, d.now)).toBe(deadline);
    d.at(deadline).ev({ type: 'tick' });
    expect(d.phase).toBe('rolled-back');
    expect(d.state.core.rollback).toMatchObject({ exposed: 3, confirmed: 1, unreachable: 2 });
    d.at(deadline + HOUR).ev({ type: 'device-hello', hello: hello(ids[1]!, '1.0.0') });
    expect(d.state.core.rollback).toMatchObject({ confirmed: 2, unreachable: 1 });
    // An unreachable device that reconnects on the new image gets the command again.
    const r = d.ev({ type: 'device-hello', hello: hello(ids[2]!, '2.0.0') });
    expect(ofType(r.effects, 'send-command')).toHaveLength(1);
    expect(r.state.core.phase).toBe('rolling-back');
  });

  it('a device that refuses its rollback below its security floor is counted refused, not awaited', () => {
    const d = rollingBack();
    const ids = W0(d.spec);
    // Its status: still committed, with the reason (it committed an image that raised its floor).
    let r = d.statuses(ids.slice(0, 1), 'committed', 'below-security-floor');
    expect(d.state.core.rollback).toMatchObject({ exposed: 3, confirmed: 0, refused: 1 });
    expect(ofType(r.effects, 'audit').map((a) => a.entry)).toContainEqual(
      expect.objectContaining({ action: 'device.rollback-refused', deviceId: ids[0] }),
    );
    // Its hello (the status may be lost): no command re-sent, counted once.
    r = d.ev({ type: 'device-hello', hello: hello(ids[1]!, '2.0.0', { deploymentId: 'dep-1', state: 'committed', toVersion: '2.0.0', reason: 'below-security-floor' }) });
    expect(ofType(r.effects, 'send-command')).toHaveLength(0);
    d.ev({ type: 'device-hello', hello: hello(ids[1]!, '2.0.0', { deploymentId: 'dep-1', state: 'committed', toVersion: '2.0.0', reason: 'below-security-floor' }) });
    expect(d.state.core.rollback).toMatchObject({ refused: 2 });
    expect(d.phase).toBe('rolling-back');
    d.statuses(ids.slice(2), 'rolled-back', 'rollback-command');
    expect(d.phase).toBe('rolled-back');
    expect(d.state.core.rollback).toMatchObject({ exposed: 3, confirmed: 1, unreachable: 0, refused: 2 });
    expect(allDevices(d.state).filter((x) => x.rollback?.status === 'refused').map((x) => x.deviceId).sort()).toEqual(ids.slice(0, 2).sort());
  });

  it('a late device failing after completion is audited for the operator, and changes nothing else', () => {
    const d = PHASE_BUILDERS.completed!();
    const late = devicesInWave(d.spec, 2, 1)[0]!;
    const r = d.statuses([late], 'rolled-back', 'trial-boot-failed');
    expect(r.state.core.phase).toBe('completed');
    const entries = ofType(r.effects, 'audit').map((a) => a.entry);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ action: 'device.failed-late', deviceId: late, detail: { reason: 'trial-boot-failed' } });
  });

  it('a device exposed after the rollback began (it held the manifest) is rolled back too', () => {
    const d = rollingBack();
    const extra = devicesInWave(d.spec, 0, 4)[3]!;
    const r = d.statuses([extra], 'installing');
    expect(ofType(r.effects, 'send-command').map((c) => c.command.deviceId)).toEqual([extra]);
    expect(r.state.core.rollback!.exposed).toBe(4);
  });
});

describe('engine: pause and resume', () => {
  it('pause freezes the wave deadline and resume shifts it by the paused time', () => {
    const d = rolling();
    d.at(T0 + 10 * MIN).op({ type: 'pause', reason: 'looking' });
    // Paused: only its manifest's renewal wakes it.
    expect(nextWakeAt(d.state, d.now)).toBe(T0 + 3.5 * 24 * HOUR);
    expect(d.at(T0 + 2 * HOUR).ev({ type: 'tick' }).state.core.phase).toBe('rolling');
    d.op({ type: 'resume' });
    expect(d.state.core.waves[0]!.deadlineAt).toBe(T0 + HOUR + (2 * HOUR - 10 * MIN));
    expect(d.phase).toBe('rolling');
  });

  it('pause holds the next wave from starting even after a Proceed', () => {
    const d = gating();
    d.op({ type: 'pause' });
    d.ev({ type: 'gate-result', wave: 0, attempt: 1, decision: decision(d.spec, 0, 1, 'Proceed') });
    expect(d.phase).toBe('pending');
    expect(d.state.core.waitingFor).toContain('operator');
    d.op({ type: 'resume' });
    expect(d.phase).toBe('rolling');
  });

  it('a trial failure aborts even while paused (safety wins)', () => {
    const d = rolling();
    d.op({ type: 'pause' });
    d.statuses(W0(d.spec).slice(0, 1), 'failed', 'trial-boot-failed');
    expect(d.phase).toBe('rolled-back');
    expect(d.state.core.pause).toBeUndefined();
  });

  it('promote during rolling skips stragglers and the soak; during soaking skips the rest of the soak', () => {
    const d = rolling();
    d.statuses(W0(d.spec).slice(0, 1), 'committed');
    expect(d.op({ type: 'promote' }).state.core.phase).toBe('gating');
    const s = soaking();
    expect(s.op({ type: 'promote' }).state.core.phase).toBe('gating');
  });
});

const ACTIONS: OperatorAction[] = [
  { type: 'start' },
  { type: 'pause' },
  { type: 'resume' },
  { type: 'abort', rollback: true },
  { type: 'rollback' },
  { type: 'promote' },
  { type: 'approve' },
];

// Which operator actions each state accepts (✓) — every other combination is refused with a code.
const ACCEPTS: Record<string, string[]> = {
  draft: ['start', 'abort'],
  scheduled: ['pause', 'abort', 'promote'],
  'pending-approval': ['pause', 'abort', 'approve'],
  rolling: ['pause', 'abort', 'rollback', 'promote'],
  'rolling-paused': ['resume', 'abort', 'rollback'],
  soaking: ['pause', 'abort', 'rollback', 'promote'],
  held: ['resume', 'abort', 'rollback', 'promote'],
  gating: ['pause', 'abort', 'rollback'],
  completed: ['rollback'],
  aborted: ['rollback'],
  'rolling-back': [],
  'rolled-back': [],
};

describe('engine: every state × every operator action', () => {
  for (const [name, build] of Object.entries(PHASE_BUILDERS)) {
    for (const action of ACTIONS) {
      const accepted = ACCEPTS[name]!.includes(action.type);
      it(`${name} × ${action.type} → ${accepted ? 'accepted' : 'refused'}`, () => {
        const d = build();
        const before = d.state;
        const r = step(before, opEvent(action), d.now + 1000);
        if (accepted) {
          expect(r.rejected).toBeUndefined();
          expect(r.state.core.revision).toBe(before.core.revision + 1);
          expect(ofType(r.effects, 'audit').length).toBeGreaterThan(0);
        } else {
          expect(r.rejected?.code).toMatch(/^[a-z-]+$/);
          expect(r.rejected?.message.length).toBeGreaterThan(10);
          expect(r.state).toBe(before);
          expect(r.effects).toEqual([]);
        }
      });
    }
  }

  it('abort and rollback end in aborted or rolling-back/rolled-back from every state that accepts them', () => {
    for (const [name, build] of Object.entries(PHASE_BUILDERS)) {
      for (const type of ['abort', 'rollback'] as const) {
        if (!ACCEPTS[name]!.includes(type)) continue;
        const d = build();
        const r = step(d.state, opEvent(type === 'abort' ? { type, rollback: true } : { type }), d.now);
        expect(['aborted', 'rolling-back', 'rolled-back'], `${name} × ${type}`).toContain(r.state.core.phase);
        if (d.state.core.waves.some((w) => w.startedAt !== undefined)) {
          expect(ofType(r.effects, 'clear-rollout').length, `${name} × ${type} clears`).toBeGreaterThan(0);
        }
      }
    }
  });
});

describe('engine: reconcile (what a restart redoes)', () => {
  it('re-publishes live waves, re-asks for members, re-runs a pending gate, re-sends unconfirmed commands', () => {
    const r0 = Drive.create();
    expect(reconcile(r0.state, T0).map((e) => e.type).sort()).toEqual(['publish-rollout', 'request-members', 'schedule-wake']);
    const g = gating();
    expect(ofType(reconcile(g.state, g.now), 'run-gate')).toEqual([{ type: 'run-gate', wave: 0, attempt: 1 }]);
    const rb = rollingBack();
    const effects = reconcile(rb.state, rb.now);
    expect(ofType(effects, 'clear-rollout')).toHaveLength(1);
    const sent = ofType(rb.last.effects, 'send-command').map((c) => c.command);
    expect(ofType(effects, 'send-command').map((c) => c.command)).toEqual(expect.arrayContaining(sent));
    const c = PHASE_BUILDERS.completed!();
    expect(ofType(reconcile(c.state, c.now), 'publish-rollout')).toHaveLength(3);
  });

  it('reconcile never changes the state', () => {
    for (const build of Object.values(PHASE_BUILDERS)) {
      const d = build();
      const copy = structuredClone(d.state);
      reconcile(d.state, d.now);
      expect(d.state).toEqual(copy);
    }
  });
});

describe('engine: purity', () => {
  it('step never mutates its input state', () => {
    const d = rolling();
    const frozen = structuredClone(d.state);
    step(d.state, { type: 'device-status', status: status(W0(d.spec)[0]!, 'committed') }, T0 + 5);
    step(d.state, opEvent({ type: 'abort', rollback: true }), T0 + 5);
    expect(d.state).toEqual(frozen);
  });

  it('device counts stay consistent through a long mixed sequence', () => {
    const spec = makeSpec({ waves: [{ percent: 30, minDevicesReporting: 5, deadlineMs: HOUR }, { percent: 100 }] });
    const d = Drive.create(spec);
    const ids = devicesInWave(spec, 0, 40);
    d.ev({ type: 'wave-members', wave: 0, members: members(ids.slice(0, 30)) });
    const states = ['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'committed'] as const;
    for (let round = 0; round < states.length; round++) {
      for (let i = 0; i < ids.length; i++) {
        if ((i * 7 + round) % 3 === 0) d.ev({ type: 'device-presence', deviceId: ids[i]!, online: round % 2 === 0 });
        if (i % 5 !== 4) d.ev({ type: 'device-status', status: status(ids[i]!, states[round]!) });
      }
      countsConsistent(d);
    }
    d.at(T0 + 2 * HOUR).ev({ type: 'tick' });
    countsConsistent(d);
  });
});

// Every state × every kind of event: the phase each lands in (reviewed by hand; see the README's
// state diagram). Events arrive three hours later, past every wave deadline and soak.
const EVENT_MATRIX: Record<string, Record<string, string>> = {
  draft: { tick: 'draft', committed: 'draft', 'trial-failed': 'draft', 'hello-old': 'draft', offline: 'draft', members: 'draft', proceed: 'draft' },
  scheduled: { tick: 'rolling', committed: 'scheduled', 'trial-failed': 'scheduled', 'hello-old': 'scheduled', offline: 'scheduled', members: 'scheduled', proceed: 'scheduled' },
  'pending-approval': { tick: 'pending', committed: 'pending', 'trial-failed': 'pending', 'hello-old': 'pending', offline: 'pending', members: 'pending', proceed: 'pending' },
  rolling: { tick: 'soaking', committed: 'rolling', 'trial-failed': 'rolled-back', 'hello-old': 'rolling', offline: 'rolling', members: 'rolling', proceed: 'rolling' },
  'rolling-paused': { tick: 'rolling', committed: 'rolling', 'trial-failed': 'rolled-back', 'hello-old': 'rolling', offline: 'rolling', members: 'rolling', proceed: 'rolling' },
  soaking: { tick: 'gating', committed: 'soaking', 'trial-failed': 'rolling-back', 'hello-old': 'soaking', offline: 'soaking', members: 'soaking', proceed: 'soaking' },
  held: { tick: 'soaking', committed: 'soaking', 'trial-failed': 'rolling-back', 'hello-old': 'soaking', offline: 'soaking', members: 'soaking', proceed: 'soaking' },
  gating: { tick: 'gating', committed: 'gating', 'trial-failed': 'rolling-back', 'hello-old': 'gating', offline: 'gating', members: 'gating', proceed: 'rolling' },
  completed: { tick: 'completed', committed: 'completed', 'trial-failed': 'completed', 'hello-old': 'completed', offline: 'completed', members: 'completed', proceed: 'completed' },
  aborted: { tick: 'aborted', committed: 'aborted', 'trial-failed': 'aborted', 'hello-old': 'aborted', offline: 'aborted', members: 'aborted', proceed: 'aborted' },
  'rolling-back': { tick: 'rolling-back', committed: 'rolling-back', 'trial-failed': 'rolling-back', 'hello-old': 'rolling-back', offline: 'rolling-back', members: 'rolling-back', proceed: 'rolling-back' },
  'rolled-back': { tick: 'rolled-back', committed: 'rolled-back', 'trial-failed': 'rolled-back', 'hello-old': 'rolled-back', offline: 'rolled-back', members: 'rolled-back', proceed: 'rolled-back' },
};

describe('engine: every state × every event', () => {
  for (const [name, build] of Object.entries(PHASE_BUILDERS)) {
    it(`${name}`, () => {
      const d = build();
      const id = W0(d.spec)[0]!;
      const later = d.now + 3 * HOUR;
      const cur = d.state.core.current;
      const attempt = d.state.core.waves[cur]!.gateAttempt;
      const events: Record<string, EngineEvent> = {
        tick: { type: 'tick' },
        committed: { type: 'device-status', status: status(id, 'committed', { seq: 10_000, at: later }) },
        'trial-failed': { type: 'device-status', status: status(id, 'rolled-back', { reason: 'trial-boot-failed', seq: 10_000, at: later }) },
        'hello-old': { type: 'device-hello', hello: hello(id, '1.0.0') },
        offline: { type: 'device-presence', deviceId: id, online: false },
        members: { type: 'wave-members', wave: 0, members: [] },
        proceed: { type: 'gate-result', wave: cur, attempt, decision: decision(d.spec, cur, attempt, 'Proceed') },
      };
      for (const [ev, event] of Object.entries(events)) {
        const r = step(d.state, event, later);
        expect(r.state.core.phase, `${name} × ${ev}`).toBe(EVENT_MATRIX[name]![ev]);
        expect(r.state.core.revision, `${name} × ${ev} revision`).toBeGreaterThanOrEqual(d.state.core.revision);
        expect(recount(r.state.core, allDevices(r.state)), `${name} × ${ev} counts`).toEqual(r.state.core.waves.map((w) => w.counts));
        // Whatever happened, the engine either waits for an event or has a wake-up scheduled.
        const wake = ofType(r.effects, 'schedule-wake')[0]?.at ?? nextWakeAt(r.state, later);
        if (['scheduled', 'rolling', 'soaking', 'rolling-back'].includes(r.state.core.phase) && !r.state.core.pause) {
          expect(wake, `${name} × ${ev} wake`).toBeDefined();
        }
      }
    });
  }
});
