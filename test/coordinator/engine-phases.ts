/** Builders that bring a fresh deployment into each engine state, for the table-driven tests. */
import { createDeployment, step } from '../../coordinator/engine/engine.js';
import type { DecisionRecord } from '../../coordinator/gate/decision.js';
import type { Recommendation } from '../../protocol/canary.js';
import type { DeploymentSpec, DeploymentState, EngineEvent, OperatorAction, StepResult } from '../../coordinator/engine/types.js';
import type { UpdateReason } from '../../protocol/reasons.js';
import type { UpdateState } from '../../protocol/update-state.js';
import { devicesInWave, HOUR, makeSpec, members, MIN, status, T0 } from './engine-fixtures.js';

export function decision(spec: DeploymentSpec, wave: number, attempt: number, rec: Recommendation): DecisionRecord {
  return {
    id: `${spec.id}.w${wave}.gate.a${attempt}`,
    deploymentId: spec.id,
    wave,
    attempt,
    at: T0,
    source: 'gate',
    inputsDigest: 'x',
    policy: {},
    analyzers: [],
    final: { recommendation: rec, riskLevel: rec === 'Abort' ? 'Critical' : 'Low', rule: `test:${rec}`, issues: [] },
  };
}

/** A small driver: steps events in order and keeps every result. */
export class Drive {
  state: DeploymentState;
  last: StepResult;
  now: number;
  constructor(
    readonly spec: DeploymentSpec,
    start: StepResult,
    now = T0,
  ) {
    this.state = start.state;
    this.last = start;
    this.now = now;
  }
  static create(spec = makeSpec(), now = T0): Drive {
    return new Drive(spec, createDeployment(spec, now, 'alice'), now);
  }
  at(t: number): this {
    this.now = t;
    return this;
  }
  ev(event: EngineEvent): StepResult {
    const r = step(this.state, event, this.now);
    this.last = r;
    this.state = r.state;
    return r;
  }
  op(action: Parameters<typeof opEvent>[0]): StepResult {
    return this.ev(opEvent(action));
  }
  statuses(ids: readonly string[], state: UpdateState, reason?: UpdateReason): StepResult {
    let r = this.last;
    for (const id of ids) r = this.ev({ type: 'device-status', status: status(id, state, { at: this.now, ...(reason ? { reason } : {}) }) });
    return r;
  }
  get phase(): string {
    return this.state.core.phase;
  }
}

export function opEvent(action: OperatorAction): EngineEvent {
  return { type: 'operator', action, actor: 'alice' };
}

export const W0 = (spec: DeploymentSpec) => devicesInWave(spec, 0, 3);

/** Rolling wave 0 with 3 online members. */
export function rolling(): Drive {
  const d = Drive.create();
  d.at(T0 + 1).ev({ type: 'wave-members', wave: 0, members: members(W0(d.spec)) });
  return d;
}

export function soaking(): Drive {
  const d = rolling();
  d.at(T0 + 2 * MIN).statuses(W0(d.spec), 'downloading');
  d.statuses(W0(d.spec), 'committed');
  return d;
}

export function gating(): Drive {
  const d = soaking();
  d.at(T0 + 40 * MIN).ev({ type: 'tick' });
  return d;
}

/** Every wave proceeds; waves 1 and 2 have no members here, so they complete at once. */
export function completed(): Drive {
  const d = gating();
  for (let w = 0; w < 3; w++) {
    if (w > 0) d.ev({ type: 'wave-members', wave: w, members: [] });
    const attempt = d.state.core.waves[w]!.gateAttempt;
    d.ev({ type: 'gate-result', wave: w, attempt, decision: decision(d.spec, w, attempt, 'Proceed') });
  }
  return d;
}

export function rollingBack(): Drive {
  const d = soaking();
  d.op({ type: 'abort', reason: 'test', rollback: true });
  return d;
}

export function rolledBack(): Drive {
  const d = rollingBack();
  d.at(T0 + HOUR).statuses(W0(d.spec), 'rolled-back', 'rollback-command');
  return d;
}

export function aborted(): Drive {
  const d = rolling();
  d.op({ type: 'abort', rollback: false });
  return d;
}

export function held(): Drive {
  const d = gating();
  const spec = d.spec;
  for (let i = 0; i <= spec.monitor.maxExtensions; i++) {
    const attempt = d.state.core.waves[0]!.gateAttempt;
    d.ev({ type: 'gate-result', wave: 0, attempt, decision: decision(spec, 0, attempt, 'Monitor') });
    if (d.state.core.pause) break;
    d.at(d.state.core.waves[0]!.soakEndsAt!).ev({ type: 'tick' });
  }
  return d;
}

export const PHASE_BUILDERS: Record<string, () => Drive> = {
  draft: () => Drive.create(makeSpec({ draft: true })),
  scheduled: () => Drive.create(makeSpec({ startAt: T0 + HOUR })),
  'pending-approval': () =>
    Drive.create(makeSpec({ waves: [{ percent: 10, requiresApproval: true, minDevicesReporting: 1 }, { percent: 100, minDevicesReporting: 1 }] })),
  rolling,
  'rolling-paused': () => {
    const d = rolling();
    d.op({ type: 'pause' });
    return d;
  },
  soaking,
  held,
  gating,
  completed,
  aborted,
  'rolling-back': rollingBack,
  'rolled-back': rolledBack,
};
