/**
 * A status counts only for an update the device was offered (pure engine, table-driven): its bucket's
 * wave of the deployment was published to its model, or it is tracked already. Anything else is an
 * `unoffered-status` anomaly effect that changes nothing — and the legitimate races still count.
 */
import { describe, expect, it } from 'vitest';
import { step } from '../../coordinator/engine/engine.js';
import type { DeploymentState, EngineEvent } from '../../coordinator/engine/types.js';
import { defaultWaves } from '../../coordinator/engine/deployment-spec.js';
import { devicesInWave, hello, HOUR, makeSpec, members, MIN, ofType, status, T0 } from './engine-fixtures.js';
import { Drive, rolling, W0 } from './engine-phases.js';
import { bucketOf } from '../../protocol/bucket.js';
import { waveOfBucketIn } from '../../coordinator/engine/wave-plan.js';
import { definedProps } from '../../firmware/defined-props.js';

const statusEvent = (s: ReturnType<typeof status>, hardwareModel?: string): EngineEvent => ({
  type: 'device-status',
  status: s,
  ...definedProps({ hardwareModel }),
});

/** A device id whose bucket is in no wave of a deployment whose waves stop short of 100 %. */
function outsideEveryWave(spec: ReturnType<typeof makeSpec>): string {
  for (let i = 0; i < 100_000; i++) if (waveOfBucketIn(spec, bucketOf(`x-${i}`)) < 0) return `x-${i}`;
  throw new Error('no such id');
}

describe('engine: statuses for updates never offered', () => {
  const cases: { name: string; setup: () => { d: Drive; event: EngineEvent }; detail: RegExp }[] = [
    {
      name: "a trial-boot failure from a device whose wave has not started (the bucket was never published)",
      setup: () => {
        const d = rolling();
        const later = devicesInWave(d.spec, 2, 1)[0]!;
        return { d, event: statusEvent(status(later, 'rolled-back', { reason: 'trial-boot-failed', at: T0 + MIN }), 'm1') };
      },
      detail: /wave 3 has not started/,
    },
    {
      name: 'a status from a device of a model the deployment does not target, in a started wave',
      setup: () => {
        const d = rolling();
        const stranger = devicesInWave(d.spec, 0, 10).at(-1)!;
        return { d, event: statusEvent(status(stranger, 'rolled-back', { reason: 'trial-boot-failed', at: T0 + MIN }), 'cm4') };
      },
      detail: /hardware model cm4 is not targeted/,
    },
    {
      name: 'a status from a device whose bucket is in no wave',
      setup: () => {
        const spec = makeSpec({ waves: defaultWaves([10, 50], 30 * MIN, { minDevicesReporting: 1, deadlineMs: HOUR }) });
        const d = Drive.create(spec);
        return { d, event: statusEvent(status(outsideEveryWave(spec), 'failed', { reason: 'write-failed', at: T0 + MIN }), 'm1') };
      },
      detail: /in no wave/,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: an anomaly, nothing else`, () => {
      const { d, event } = c.setup();
      const before = d.state;
      const r = d.at(T0 + MIN).ev(event);
      // The state is the same object: no revision, no write, no counts.
      expect(r.state).toBe(before);
      expect(r.changedDevices).toEqual([]);
      expect(r.effects).toHaveLength(1);
      const [a] = ofType(r.effects, 'device-anomaly');
      expect(a).toMatchObject({ kind: 'unoffered-status', deviceId: event.type === 'device-status' ? event.status.deviceId : '' });
      expect(a!.detail).toMatch(c.detail);
    });
  }

  it('one device cannot abort a rollout it is not part of: its early failure is ignored, and its wave starts cleanly', () => {
    const spec = makeSpec({ waves: defaultWaves([10, 100], 0, { minDevicesReporting: 1, deadlineMs: HOUR }) });
    const d = Drive.create(spec);
    const w0 = devicesInWave(spec, 0, 3);
    const rogue = devicesInWave(spec, 1, 1)[0]!;
    d.at(T0 + 1).ev({ type: 'wave-members', wave: 0, members: members(w0) });
    d.at(T0 + 2).ev(statusEvent(status(rogue, 'rolled-back', { reason: 'trial-boot-failed', at: T0 + 2 }), 'm1'));
    expect(d.phase).toBe('rolling');
    d.at(T0 + 3).statuses(w0, 'committed');
    // Soak 0: the gate runs; a Proceed starts wave 1.
    expect(d.phase).toBe('gating');
    const gate = ofType(d.last.effects, 'run-gate')[0]!;
    d.at(T0 + 4).ev({
      type: 'gate-result',
      wave: 0,
      attempt: gate.attempt,
      decision: { id: 'g', deploymentId: spec.id, wave: 0, attempt: gate.attempt, at: T0 + 4, source: 'gate', inputsDigest: 'x', policy: {}, analyzers: [], final: { recommendation: 'Proceed', riskLevel: 'Low', rule: 't', issues: [] } },
    });
    expect(d.phase).toBe('rolling');
    expect(d.state.core.current).toBe(1);
    d.at(T0 + 5).ev({ type: 'wave-members', wave: 1, members: members([rogue]) });
    expect(d.phase).toBe('rolling');
    expect(d.state.core.waves[1]!.counts.trialFailures).toBe(0);
    expect(d.state.core.waves.flatMap((w) => [w.counts.failed])).toEqual([0, 0]);
  });

  it('a hello naming an update of a wave that never started is an anomaly and does not track the device', () => {
    const d = rolling();
    const later = devicesInWave(d.spec, 2, 1)[0]!;
    const r = d.at(T0 + MIN).ev({ type: 'device-hello', hello: hello(later, '1.0.0', { deploymentId: 'dep-1', state: 'rolled-back', reason: 'trial-boot-failed' }) });
    expect(ofType(r.effects, 'device-anomaly')).toHaveLength(1);
    expect(r.changedDevices).toEqual([]);
    expect(d.state.devices[bucketOf(later)]?.[later]).toBeUndefined();
  });

  it('an aborted deployment does not take on a device that claims an update its wave never got', () => {
    const d = rolling();
    d.at(T0 + MIN).op({ type: 'abort', reason: 'test', rollback: true });
    const later = devicesInWave(d.spec, 2, 1)[0]!;
    const r = d.at(T0 + 2 * MIN).ev({ type: 'device-hello', hello: hello(later, '2.0.0', { deploymentId: 'dep-1', state: 'committed' }) });
    expect(ofType(r.effects, 'send-command')).toEqual([]);
    expect(ofType(r.effects, 'device-anomaly')).toHaveLength(1);
    expect(d.state.devices[bucketOf(later)]?.[later]).toBeUndefined();
  });
});

describe('engine: the legitimate races still count', () => {
  it('a device offline when its wave was published reports later: its bucket was offered', () => {
    const d = rolling();
    const late = devicesInWave(d.spec, 0, 10).at(-1)!;
    const r = d.at(T0 + 10 * MIN).ev(statusEvent(status(late, 'downloading', { at: T0 + 10 * MIN }), 'm1'));
    expect(ofType(r.effects, 'device-anomaly')).toEqual([]);
    expect(d.state.devices[bucketOf(late)]?.[late]).toMatchObject({ state: 'downloading', late: true });
  });

  it('a device of unknown model (no hello yet) in a started wave counts', () => {
    const d = rolling();
    const late = devicesInWave(d.spec, 0, 10).at(-1)!;
    const r = d.at(T0 + MIN).ev(statusEvent(status(late, 'downloading', { at: T0 + MIN })));
    expect(ofType(r.effects, 'device-anomaly')).toEqual([]);
    expect(d.state.devices[bucketOf(late)]?.[late]?.state).toBe('downloading');
  });

  it('after a restart (state restored from storage) a status of a started wave counts', () => {
    const d = rolling();
    const restored = JSON.parse(JSON.stringify(d.state)) as DeploymentState;
    const id = W0(d.spec)[0]!;
    const r = step(restored, statusEvent(status(id, 'committed', { at: T0 + MIN }), 'm1'), T0 + MIN);
    expect(ofType(r.effects, 'device-anomaly')).toEqual([]);
    expect(r.state.core.waves[0]!.counts.committed).toBe(1);
  });

  it('a tracked device keeps reporting after its deployment is rolled back (rollback command)', () => {
    const d = rolling();
    const [a] = W0(d.spec);
    d.at(T0 + MIN).statuses([a!], 'committed');
    d.at(T0 + 2 * MIN).op({ type: 'abort', reason: 'test', rollback: true });
    expect(ofType(d.last.effects, 'send-command').map((c) => c.command.deviceId)).toEqual([a]);
    const r = d.at(T0 + 3 * MIN).ev(statusEvent(status(a!, 'rolled-back', { reason: 'rollback-command', at: T0 + 3 * MIN }), 'm1'));
    expect(ofType(r.effects, 'device-anomaly')).toEqual([]);
    expect(r.state.devices[bucketOf(a!)]?.[a!]?.rollback?.status).toBe('confirmed');
  });
});
