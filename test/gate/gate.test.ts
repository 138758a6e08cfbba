import { describe, expect, it } from 'vitest';
import { ManualClock } from '../support/manual-clock.js';
import type { CanarySnapshot, DeviceSummary, Verdict } from '../../protocol/canary.js';
import { DEFAULT_GATE_POLICY, type GateAnalyzer } from '../../coordinator/gate/analyzer.js';
import {
  checkInstallFailures,
  checkSilentDevices,
  checkSufficiency,
  checkTrialFailures,
  classifyUpdate,
  countSnapshot,
  hardGateVerdict,
  hardGatesAnalyzer,
  INCONCLUSIVE_TRIAL_REASONS,
  TRIAL_FAILURE_REASONS,
} from '../../coordinator/gate/hard-gates.js';
import { combineOutcomes, type NamedOutcome } from '../../coordinator/gate/combine.js';
import { inputsDigest, runGate } from '../../coordinator/gate/run-gate.js';
import { fisherExact, fisherGreater } from '../../coordinator/stats/counts.js';
import { lgamma } from '../../coordinator/stats/special.js';
import { GatePolicySchema } from '../../coordinator/gate/policy.js';
import { DecisionRecordSchema } from '../../coordinator/gate/decision.js';
import { createStatAnalyzer } from '../../coordinator/canary/stat-judge.js';

const policy = { ...DEFAULT_GATE_POLICY, minReportingDevices: 3 };

function dev(i: number, over: Partial<DeviceSummary> = {}): DeviceSummary {
  return {
    deviceId: `d${i}`,
    cohort: 'canary',
    hardwareModel: 'm1',
    firmwareVersion: '2.0.0',
    exposureH: 1,
    samples: 5,
    events: { crashes: 0, errors: 0, reboots: 0, agentRestarts: 0 },
    metrics: {},
    update: { state: 'committed' },
    silent: false,
    errorSignatures: [],
    logSample: [],
    ...over,
  };
}

function snap(devices: DeviceSummary[]): CanarySnapshot {
  return { v: 1, kind: 'canary-snapshot', deploymentId: 'dep-1', wave: 0, fromVersions: ['1.0.0'], toVersion: '2.0.0', window: { from: 0, to: 1000 }, takenAt: 1000, devices };
}

const control = (n: number, silent: number): DeviceSummary[] =>
  Array.from({ length: n }, (_, i) => dev(1000 + i, { cohort: 'control', firmwareVersion: '1.0.0', silent: i < silent }));

describe('hard gates', () => {
  it('classifies update outcomes: trial failures, install failures, ineligible, ordered rollbacks', () => {
    const table: [Parameters<typeof classifyUpdate>, string][] = [
      [['committed', undefined], 'succeeded'],
      [['rolled-back', 'trial-boot-failed'], 'trial-failure'],
      [['failed', 'health-check-failed'], 'trial-failure'],
      [['rolled-back', 'rollback-command'], 'ineligible'],
      [['failed', 'hash-mismatch'], 'install-failure'],
      [['rejected', 'bad-signature'], 'install-failure'],
      [['rejected', 'version-not-installable'], 'ineligible'],
      [['already-installed', undefined], 'ineligible'],
      [['installing', undefined], 'in-progress'],
      [[undefined, undefined], 'no-report'],
    ];
    for (const [args, want] of table) expect(classifyUpdate(...args), JSON.stringify(args)).toBe(want);
  });

  it('an interrupted trial (power loss after the new slot came up) is never a trial failure', () => {
    expect(INCONCLUSIVE_TRIAL_REASONS.filter((r) => TRIAL_FAILURE_REASONS.includes(r))).toEqual([]);
    // The agent retries the trial: reported as rebooting, then trial, with the reason.
    expect(classifyUpdate('rebooting', 'trial-interrupted')).toBe('in-progress');
    expect(classifyUpdate('trial', 'trial-interrupted')).toBe('in-progress');
    // Ending on it would be odd; it then counts against the share limit, not the any-one limit.
    expect(classifyUpdate('rolled-back', 'trial-interrupted')).toBe('install-failure');
    const retrying = dev(3, { update: { state: 'rebooting', reason: 'trial-interrupted' } });
    const c = countSnapshot(snap([dev(1), dev(2), retrying, dev(4)]));
    expect(c).toMatchObject({ trialFailures: 0, installFailures: 0 });
    expect(hardGateVerdict(c, policy).recommendation).toBe('Proceed');
    // Its second interruption is reported as a trial boot failure, and that aborts as before.
    const twice = countSnapshot(snap([dev(1), dev(2), dev(3, { update: { state: 'rolled-back', reason: 'trial-boot-failed' } }), dev(4)]));
    expect(hardGateVerdict(twice, policy)).toMatchObject({ recommendation: 'Abort', rule: 'hard-limit:trial-failures' });
  });

  it('all committed and enough reporters → Proceed with passing evidence', () => {
    const v = hardGateVerdict(countSnapshot(snap([dev(1), dev(2), dev(3)])), policy);
    expect(v.recommendation).toBe('Proceed');
    expect(v.rule).toBe('hard-limits:pass');
    expect(v.evidence.map((e) => e.result)).toEqual(['pass', 'pass', 'pass', 'pass']);
  });

  it('any trial failure aborts (and not when the policy turns it off)', () => {
    const c = countSnapshot(snap([dev(1), dev(2), dev(3, { update: { state: 'rolled-back', reason: 'trial-boot-failed' } })]));
    expect(c.trialFailures).toBe(1);
    expect(checkTrialFailures(c, policy).result).toBe('critical');
    expect(hardGateVerdict(c, policy)).toMatchObject({ recommendation: 'Abort', riskLevel: 'Critical', rule: 'hard-limit:trial-failures' });
    expect(checkTrialFailures(c, { ...policy, abortOnTrialFailure: false }).result).toBe('pass');
  });

  it('install failures above the share abort; at the share they pass; non-reporters do not dilute', () => {
    const ten = Array.from({ length: 10 }, (_, i) => dev(i));
    ten[0] = dev(0, { update: { state: 'failed', reason: 'write-failed' } });
    expect(checkInstallFailures(countSnapshot(snap(ten)), policy).result).toBe('pass'); // 10 % = max
    ten[1] = dev(1, { update: { state: 'failed', reason: 'download-failed' } });
    const two = checkInstallFailures(countSnapshot(snap(ten)), policy);
    expect(two).toMatchObject({ result: 'critical', values: { installFailures: 2, judged: 10 } });
    // 3 reporters (1 failed) + 20 silent-less non-reporters: share is 1/3, not 1/23.
    const quiet = Array.from({ length: 20 }, (_, i) => dev(100 + i, { samples: 0 }));
    for (const q of quiet) delete (q as { update?: unknown }).update;
    const c = countSnapshot(snap([dev(1, { update: { state: 'failed', reason: 'write-failed' } }), dev(2), dev(3), ...quiet]));
    expect(c).toMatchObject({ canary: 23, judged: 3, reporting: 3 });
    expect(checkInstallFailures(c, policy).result).toBe('critical');
  });

  it('silent after installing: needs the count, the share and significance against control', () => {
    const canary = Array.from({ length: 20 }, (_, i) => dev(i, { silent: i < 3 }));
    expect(checkSilentDevices(countSnapshot(snap([...canary, ...control(200, 0)])), policy).result).toBe('critical');
    // Control just as silent (a fleet-wide outage): not the image's fault.
    expect(checkSilentDevices(countSnapshot(snap([...canary, ...control(200, 30)])), policy).result).toBe('pass');
    // One silent device is below the count limit.
    const one = Array.from({ length: 20 }, (_, i) => dev(i, { silent: i < 1 }));
    expect(checkSilentDevices(countSnapshot(snap([...one, ...control(200, 0)])), policy).result).toBe('pass');
    // Without a control cohort the two thresholds decide.
    expect(checkSilentDevices(countSnapshot(snap(canary)), policy).result).toBe('critical');
  });

  it('too few reporters holds at Monitor; the minimum is capped by the wave size', () => {
    const quiet = dev(2, { samples: 0 });
    delete (quiet as { update?: unknown }).update;
    const c = countSnapshot(snap([dev(1), quiet]));
    expect(checkSufficiency(c, policy)).toMatchObject({ result: 'nodata', values: { reporting: 1, needed: 2 } });
    expect(hardGateVerdict(c, policy)).toMatchObject({ recommendation: 'Monitor', rule: 'sufficiency:min-reporting-devices' });
    expect(hardGateVerdict(countSnapshot(snap([])), policy).recommendation).toBe('Proceed');
  });

  it('is a GateAnalyzer named hard-gates with role hard', async () => {
    const out = await hardGatesAnalyzer.analyze(snap([dev(1), dev(2), dev(3)]), { policy, now: 0 });
    expect(hardGatesAnalyzer).toMatchObject({ name: 'hard-gates', role: 'hard' });
    expect(out.ok && out.verdict.recommendation).toBe('Proceed');
  });
});

describe("Fisher's exact test", () => {
  it('matches known values', () => {
    // R: fisher.test(matrix(c(3,1,1,3),2), alternative="greater")$p.value = 0.2428571
    expect(fisherGreater(3, 1, 1, 3)).toBeCloseTo(0.2428571, 6);
    // R: fisher.test(matrix(c(5,0,0,5),2), alternative="greater")$p.value = 0.003968254
    expect(fisherGreater(5, 0, 0, 5)).toBeCloseTo(0.003968254, 8);
    expect(fisherGreater(0, 10, 5, 5)).toBeCloseTo(1, 10);
    expect(lgamma(11)).toBeCloseTo(Math.log(3628800), 10);
    expect(lgamma(20001)).toBeCloseTo(178075.6217371987, 6);
    // One definition: the hard gate's one-sided p is the judge's.
    expect(fisherGreater(12, 88, 40, 960)).toBe(fisherExact(12, 88, 40, 960).pGreater);
  });
});

function verdict(rec: Verdict['recommendation'], rule = `r:${rec}`): Verdict {
  return { recommendation: rec, riskLevel: rec === 'Abort' ? 'Critical' : rec === 'Monitor' ? 'Medium' : 'Low', issues: [`${rec} issue`], rule, evidence: [] };
}
const ok = (name: string, role: NamedOutcome['role'], rec: Verdict['recommendation']): NamedOutcome => ({
  name,
  role,
  outcome: { ok: true, verdict: verdict(rec), latencyMs: 3 },
});
const err = (name: string, role: NamedOutcome['role']): NamedOutcome => ({
  name,
  role,
  outcome: { ok: false, error: { code: 'timeout', message: 'slow' }, latencyMs: 60_000 },
});

describe('combination rule', () => {
  const R = ['Proceed', 'Monitor', 'Abort'] as const;
  // final = stat == Abort ? Abort : max(stat, min(ai, Monitor)), with the hard gates as another stat.
  for (const hard of R)
    for (const stat of R)
      for (const ai of R) {
        it(`hard=${hard} stat=${stat} ai=${ai}`, () => {
          const { final, records } = combineOutcomes([ok('hard-gates', 'hard', hard), ok('stat', 'statistical', stat), ok('ai', 'advisory', ai)], policy);
          const order = (r: string) => R.indexOf(r as (typeof R)[number]);
          const cappedAi = ai === 'Abort' ? 'Monitor' : ai;
          const want = R[Math.max(order(hard), order(stat), order(cappedAi))];
          expect(final.recommendation).toBe(want);
          expect(records.find((r) => r.name === 'ai')!.applied).toBe(cappedAi);
        });
      }

  it('the AI may abort only where the policy allows', () => {
    const r = combineOutcomes([ok('hard-gates', 'hard', 'Proceed'), ok('ai', 'advisory', 'Abort')], { aiMayAbort: true });
    expect(r.final.recommendation).toBe('Abort');
    const capped = combineOutcomes([ok('hard-gates', 'hard', 'Proceed'), ok('ai', 'advisory', 'Abort')], { aiMayAbort: false });
    expect(capped.final).toMatchObject({ recommendation: 'Monitor', riskLevel: 'High' });
    expect(capped.final.rule).toContain('advisory capped at Monitor');
  });

  it('an analyzer error is recorded, never a verdict', () => {
    const r = combineOutcomes([ok('hard-gates', 'hard', 'Proceed'), err('stat', 'statistical')], policy);
    expect(r.final.recommendation).toBe('Proceed');
    expect(r.records[1]).toMatchObject({ ok: false, error: { code: 'timeout' } });
    expect(r.records[1]!.verdict).toBeUndefined();
    expect(r.final.issues.some((i) => i.includes('stat failed'))).toBe(true);
  });

  it('with no hard or statistical verdict the gate holds at Monitor, even if the AI says Proceed', () => {
    const r = combineOutcomes([err('hard-gates', 'hard'), ok('ai', 'advisory', 'Proceed')], policy);
    expect(r.final.recommendation).toBe('Monitor');
    expect(r.final.rule).toMatch(/^no-verdict/);
    expect(combineOutcomes([], policy).final.recommendation).toBe('Monitor');
  });

  it('names the rule of the most cautious analyzer; a tie keeps the first (hard)', () => {
    const r = combineOutcomes([ok('hard-gates', 'hard', 'Abort'), ok('stat', 'statistical', 'Abort')], policy);
    expect(r.final.rule).toBe('most-cautious: hard-gates=Abort (r:Abort)');
  });
});

describe('runGate', () => {
  const snapshot = snap([dev(1), dev(2), dev(3)]);

  it('runs every analyzer, records outputs and latencies, and digests the inputs', async () => {
    const clock = new ManualClock(5000);
    const slowStat: GateAnalyzer = {
      name: 'stat',
      analyze: async () => {
        await clock.sleep(250);
        return { ok: true, verdict: verdict('Monitor'), latencyMs: 1 };
      },
    };
    const p = runGate({ snapshot, analyzers: [slowStat, hardGatesAnalyzer], policy, clock, deadlineClock: clock, id: 'dec-1', attempt: 1 });
    await Promise.resolve();
    clock.advance(250);
    const d = await p;
    expect(DecisionRecordSchema.parse(d)).toEqual(d);
    expect(d.analyzers.map((a) => a.name)).toEqual(['hard-gates', 'stat']);
    expect(d.analyzers[1]!.latencyMs).toBe(250);
    expect(d.final.recommendation).toBe('Monitor');
    expect(d.inputsDigest).toBe(inputsDigest(snapshot));
    expect(d.inputsDigest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a throwing or hanging analyzer becomes an error record', async () => {
    const clock = new ManualClock(0);
    const thrower: GateAnalyzer = { name: 'stat', analyze: () => Promise.reject(new Error('boom')) };
    const hang: GateAnalyzer = { name: 'ai', analyze: () => new Promise(() => {}) };
    const p = runGate({ snapshot, analyzers: [hardGatesAnalyzer, thrower, hang], policy, clock, deadlineClock: clock, id: 'd', attempt: 1, timeoutMs: 1000 });
    await Promise.resolve();
    clock.advance(1000);
    const d = await p;
    expect(d.analyzers.find((a) => a.name === 'stat')).toMatchObject({ ok: false, error: { message: 'boom' } });
    expect(d.analyzers.find((a) => a.name === 'ai')).toMatchObject({ ok: false, role: 'advisory', error: { code: 'timeout' } });
    expect(d.final.recommendation).toBe('Proceed');
  });

  it('bounds an analyzer in wall time: simulated time racing past the limit times nothing out', async () => {
    // The rollout's clock runs far ahead (as the simulator's does) while a real answer is on its way.
    const clock = new ManualClock(0);
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const ai: GateAnalyzer = {
      name: 'ai',
      analyze: async () => {
        await answered;
        return { ok: true, verdict: verdict('Proceed'), latencyMs: 0 };
      },
    };
    const p = runGate({ snapshot, analyzers: [hardGatesAnalyzer, ai], policy, clock, id: 'wall', attempt: 1, timeoutMs: 60_000 });
    await Promise.resolve();
    clock.advance(10 * 60_000);
    answer();
    const d = await p;
    expect(d.analyzers.find((a) => a.name === 'ai')).toMatchObject({ ok: true });
    expect(d.at).toBe(10 * 60_000);
  });

  it('the last wave (no control cohort): the judge abstains and the hard gates decide, both ways', async () => {
    const clock = new ManualClock(0);
    const analyzers = [hardGatesAnalyzer, createStatAnalyzer()];
    const healthy = await runGate({ snapshot: snap([dev(1), dev(2), dev(3)]), analyzers, policy, clock, id: 'last', attempt: 1 });
    expect(DecisionRecordSchema.parse(healthy)).toEqual(healthy);
    expect(healthy.final.recommendation).toBe('Proceed');
    expect(healthy.final.rule).toContain('hard-gates=Proceed');
    expect(healthy.analyzers.find((a) => a.name === 'stat')).toMatchObject({ ok: false, role: 'statistical', error: { code: 'no-control' } });
    expect(healthy.analyzers.find((a) => a.name === 'stat')!.verdict).toBeUndefined();
    expect(healthy.final.issues).toContain('stat abstained (no-control): no devices left on the old firmware to compare against; the hard limits decide this gate');
    // A hard limit still aborts the last wave.
    const bad = await runGate({ snapshot: snap([dev(1), dev(2), dev(3, { update: { state: 'rolled-back', reason: 'trial-boot-failed' } })]), analyzers, policy, clock, id: 'last-bad', attempt: 1 });
    expect(bad.final.recommendation).toBe('Abort');
  });

  it('the policy schema fills the documented defaults', () => {
    expect(GatePolicySchema.parse({})).toEqual(DEFAULT_GATE_POLICY);
  });
});
