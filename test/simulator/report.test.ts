import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { failureReasons, releaseReport, type DeviceTruth, type ReleaseRun } from '../../simulator/report.js';
import { clockLine, formatRelease, humanDuration } from '../../simulator/report-format.js';
import { ReleaseSchema } from '../../simulator/scenario.js';

const truth = (id: string, over: Partial<DeviceTruth> = {}): DeviceTruth => ({
  deviceId: id,
  hardwareModel: 'rpi4',
  offlineAtStart: false,
  onlineAtEnd: true,
  ranAt: { '1.0.0': 0 },
  updateStartedAt: {},
  leftAt: {},
  finalVersion: '1.0.0',
  brickedByFirmware: null,
  brickedBySystem: null,
  refusedCorruptImage: false,
  ...over,
});

const counts = { tracked: 0, committed: 0, failed: 0, trialFailures: 0, timedOut: 0, inProgress: 0, offline: 0, ineligible: 0 };

function badRun(): { run: ReleaseRun; devices: DeviceTruth[] } {
  // wave 0 has d1, d2; d3 in wave 1 had started downloading before the abort at t=1000.
  const devices = [
    truth('d1', { ranAt: { '1.0.0': 0, '1.1.0': 500 }, leftAt: { '1.1.0': 1500 }, updateStartedAt: { dep: 100 } }),
    truth('d2', { ranAt: { '1.0.0': 0, '1.1.0': 600 }, leftAt: { '1.1.0': 2500 }, updateStartedAt: { dep: 100 } }),
    truth('d3', { ranAt: { '1.0.0': 0, '1.1.0': 1100 }, leftAt: { '1.1.0': 3000 }, updateStartedAt: { dep: 900 } }),
    truth('d4'),
  ];
  const run: ReleaseRun = {
    release: ReleaseSchema.parse({ version: '1.1.0', expect: 'abort', behaviour: { kind: 'boot-loop', share: 1 } }),
    previousVersion: '1.0.0',
    deploymentId: 'dep',
    // d3's bucket half-way round the ring: in the last wave, not the first.
    bucketOffset: (bucketOf('d3') + 512) % 1024,
    minDevicesReporting: 2,
    warnings: [],
    startedAt: 0,
    endedAt: 5000,
    phase: 'rolled-back',
    waves: [
      { index: 0, percent: 1, status: 'aborted', verdict: 'Abort', counts: { ...counts, tracked: 2, failed: 2, trialFailures: 2 } },
      { index: 1, percent: 5, status: 'pending', counts: { ...counts, tracked: 1 } },
    ],
    decisions: [{ wave: 0, at: 1000, source: 'early-hard-limit', recommendation: 'Abort', riskLevel: 'Critical', rule: 'hard-limit:trial-failures', issues: ['2 trial failures'], analyzers: [] }],
    progress: [
      { deviceId: 'd1', wave: 0, state: 'rolled-back', timedOut: false },
      { deviceId: 'd2', wave: 0, state: 'rolled-back', timedOut: false },
      { deviceId: 'd3', wave: 1, state: 'rolled-back', rollback: { status: 'confirmed' }, timedOut: false },
    ],
  };
  return { run, devices };
}

describe('simulation report', () => {
  it('computes exposure, its bound, detection and rollback times for an aborted release', () => {
    const { run, devices } = badRun();
    const r = releaseReport(run, devices);
    expect(r.exposure).toBe(3);
    expect(r.exposureBound).toBe(3);
    expect(r.timeToDetectMs).toBe(1000);
    expect(r.timeToFullRollbackMs).toBe(2000);
    expect(r.notBack).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.waves[0]).toMatchObject({ targeted: 2, installed: 2, fellBack: 2, rolledBack: 2, verdict: 'Abort' });
    expect(r.waves[1]).toMatchObject({ installed: 1, rolledBack: 1 });
    expect(formatRelease(r)).toMatch(/exposure: 3 device\(s\).*bound: 3/s);
  });

  it('counts a wide first wave by its buckets, not by the members the coordinator had heard from', () => {
    // One 100 % wave: all 12 devices boot the release within moments; the abort fires on the first
    // trial failure, when the coordinator tracks one of them. All 12 were the first wave's to expose.
    const ids = Array.from({ length: 12 }, (_, i) => `w${i}`);
    const devices = ids.map((id, i) => truth(id, { ranAt: { '1.0.0': 0, '1.1.0': 500 + i }, leftAt: { '1.1.0': 2000 }, updateStartedAt: { dep: 100 } }));
    const { run } = badRun();
    const wide: ReleaseRun = {
      ...run,
      waves: [{ index: 0, percent: 100, status: 'aborted', verdict: 'Abort', counts: { ...counts, tracked: 1, failed: 1, trialFailures: 1 } }],
      decisions: [{ ...run.decisions[0]!, at: 600 }],
      progress: [{ deviceId: 'w0', wave: 0, state: 'rolled-back', timedOut: false }],
    };
    const r = releaseReport(wide, devices);
    expect(r.exposure).toBe(12);
    expect(r.exposureBound).toBe(12);
    expect(r.problems).toEqual([]);
  });

  it('widens the bound to the first wave large enough to judge, as the creation warning said', () => {
    // 300 devices: a 5 % wave of 3 here (the gate needs 20) cannot tell a crash-rate shift from chance;
    // the abort comes in the 25 % wave. Devices of a third wave that booted before it are still over.
    const small = ['s0', 's1', 's2'];
    const next = Array.from({ length: 25 }, (_, i) => `n${i}`);
    const late = ['l0'];
    const ran = (id: string): DeviceTruth => truth(id, { ranAt: { '1.0.0': 0, '1.1.0': 500 }, leftAt: { '1.1.0': 3000 }, updateStartedAt: { dep: 100 } });
    const devices = [...small, ...next, ...late].map(ran);
    const { run } = badRun();
    const r = releaseReport(
      {
        ...run,
        minDevicesReporting: 20,
        waves: [
          { index: 0, percent: 5, status: 'passed', verdict: 'Proceed', counts: { ...counts, tracked: 3, committed: 3 } },
          { index: 1, percent: 25, status: 'aborted', verdict: 'Abort', counts: { ...counts, tracked: 25 } },
          { index: 2, percent: 100, status: 'pending', counts: { ...counts, tracked: 1 } },
        ],
        decisions: [{ ...run.decisions[0]!, wave: 1, at: 2000 }],
        progress: [
          ...small.map((deviceId) => ({ deviceId, wave: 0, state: 'rolled-back', timedOut: false })),
          ...next.map((deviceId) => ({ deviceId, wave: 1, state: 'rolled-back', timedOut: false })),
          ...late.map((deviceId) => ({ deviceId, wave: 2, state: 'rolled-back', timedOut: false })),
        ],
      },
      devices,
    );
    expect(r.exposure).toBe(29);
    expect(r.exposureBound).toBe(28);
    expect(r.problems).toEqual(['exposure 29 exceeds the bound 28 (the first wave large enough to judge + devices still installing when the abort fired)']);
  });

  it("carries the coordinator's warnings at creation into the report and its summary", () => {
    const { run, devices } = badRun();
    const warning = 'wave 1 (1 %) covers 2 of the 4 known devices in the target, fewer than the 20 it needs reporting';
    const r = releaseReport({ ...run, warnings: [warning] }, devices);
    expect(r.warnings).toEqual([warning]);
    expect(formatRelease(r)).toContain(`coordinator warning at creation: ${warning}`);
  });

  it('flags exposure past the bound, devices not back, and system bricks', () => {
    const { run, devices } = badRun();
    devices[3] = truth('d4', { ranAt: { '1.0.0': 0, '1.1.0': 2000 }, finalVersion: '1.1.0', updateStartedAt: { dep: 1500 } });
    devices[0] = { ...devices[0]!, brickedBySystem: { at: 1200, reason: 'no-bootable-slot' }, finalVersion: null };
    const r = releaseReport(run, devices);
    expect(r.ok).toBe(false);
    expect(r.problems.join('\n')).toMatch(/exposure 4 exceeds the bound 3/);
    expect(r.problems.join('\n')).toMatch(/not back on 1\.0\.0/);
    expect(r.problems.join('\n')).toMatch(/without a bootable slot/);
    expect(r.notBack).toEqual(['d1', 'd4']);
    expect(r.timeToFullRollbackMs).toBeNull();
  });

  it('tells a firmware brick from a system failure', () => {
    const { run, devices } = badRun();
    devices[1] = { ...devices[1]!, brickedByFirmware: { version: '1.1.0', at: 700 }, finalVersion: null, onlineAtEnd: false, leftAt: {} };
    const r = releaseReport({ ...run, release: ReleaseSchema.parse({ version: '1.1.0', expect: 'abort', behaviour: { kind: 'brick', share: 0.5 } }) }, devices);
    expect(r.bricked).toEqual({ byFirmware: 1, bySystem: 0 });
    expect(r.notBack).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('counts a false abort of a good release and incomplete reach', () => {
    const { run, devices } = badRun();
    const r = releaseReport({ ...run, release: ReleaseSchema.parse({ version: '1.1.0', expect: 'complete' }) }, devices);
    expect(r.falseAbort).toBe(true);
    expect(r.ok).toBe(false);
    expect(r.reach).toEqual({ online: 4, onVersion: 0, refusedCorrupt: 0 });
  });

  it('an abort at the Monitor limit is found by its own Abort decision (source monitor-limit)', () => {
    const { run, devices } = badRun();
    const monitor = { wave: 0, at: 800, source: 'gate', recommendation: 'Monitor', riskLevel: 'Medium', rule: 'most-cautious: stat=Monitor (score)', issues: ['stat: score 60'], analyzers: [] };
    const limit = { wave: 0, at: 1000, source: 'monitor-limit', recommendation: 'Abort', riskLevel: 'High', rule: 'monitor-limit', issues: ['the gate said Monitor more than 3 times (limit 3, on limit: abort); last gate: most-cautious: stat=Monitor (score)'], analyzers: [] };
    const r = releaseReport({ ...run, decisions: [monitor, limit], abortReason: 'the gate said Monitor more than 3 times' }, devices);
    expect(r.detectedBy).toBe('monitor-limit');
    expect(r.timeToDetectMs).toBe(1000);
    expect(r.exposureBound).toBe(3);
    expect(r.ok).toBe(true);
    const text = formatRelease(r);
    expect(text).toContain('abort at wave 1 (the gate kept saying Monitor, so the rollout was aborted): monitor-limit');
    expect(text).toContain('last gate: most-cautious: stat=Monitor (score)');
    // A gate's own Abort is still told apart.
    expect(releaseReport(run, devices).detectedBy).toBe('gate');
  });

  it('formats durations for people', () => {
    expect(humanDuration(null)).toBe('—');
    expect(humanDuration(45_000)).toBe('45s');
    expect(humanDuration(270_000)).toBe('4m 30s');
    expect(humanDuration(4_320_000)).toBe('1h 12m');
  });
});

describe('failure reasons per wave', () => {
  it('counts why members failed, leaving out refusals for ineligibility and ordered rollbacks', () => {
    expect(
      failureReasons([
        { deviceId: 'a', wave: 0, state: 'failed', reason: 'download-failed', timedOut: false },
        { deviceId: 'b', wave: 0, state: 'failed', reason: 'download-failed', timedOut: false },
        { deviceId: 'c', wave: 0, state: 'downloading', timedOut: true },
        { deviceId: 'd', wave: 0, state: 'rolled-back', reason: 'trial-boot-failed', timedOut: false },
        { deviceId: 'e', wave: 0, state: 'rolled-back', reason: 'rollback-command', timedOut: false },
        { deviceId: 'f', wave: 0, state: 'rejected', reason: 'wrong-hardware', timedOut: false },
        { deviceId: 'g', wave: 0, state: 'committed', timedOut: false },
      ]),
    ).toEqual({ 'failed:download-failed': 2, 'timed-out in downloading': 1, 'rolled-back:trial-boot-failed': 1 });
  });
});

describe('clock line', () => {
  const base = {
    scale: 300, paced: true, realMs: 100_000, simulatedMs: 15_000_000, effectiveScale: 150, lowestScale: 3.2, slowedShare: 0.4,
    slowedBy: { lag: 10_000, saturation: 25_000, work: 5_000 }, uncreditedMs: 12_300, lagMs: { p50: 3, p99: 120, max: 2400 },
    work: { tracked: 10, longestMs: 900, stuck: 0 },
  };

  it('says how far the load slowed a paced clock, and why', () => {
    expect(clockLine(base)).toBe(
      'clock: paced, ×150 effective of ×300, slowed 40% of the time (lowest ×3.2, mostly for a saturated event loop); event-loop lag p99 120 ms, max 2400 ms; 12.3 s of stalls not counted',
    );
  });

  it('says a fixed clock is fixed', () => {
    expect(clockLine({ ...base, paced: false, scale: 1, slowedShare: 0, uncreditedMs: 0 })).toBe('clock: fixed ×1.0; event-loop lag p99 120 ms, max 2400 ms');
  });
});
