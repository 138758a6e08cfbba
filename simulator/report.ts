/**
 * The simulation report: per release and per wave, what the coordinator decided and why, and what
 * really happened on the devices — exposure to bad firmware, time to detect, time to full rollback,
 * bricked devices (by the firmware model versus by the system), false aborts. Pure: it combines the
 * coordinator's records with the simulator's ground truth.
 */
import { bucketOf, waveOfBucket } from '@fleet/protocol/bucket';
import type { Behaviour, Release } from './scenario.js';
import type { ClockStats } from './paced-clock.js';

/** What the simulator knows for certain about one device (from its simulated hardware). */
export interface DeviceTruth {
  deviceId: string;
  hardwareModel: string;
  offlineAtStart: boolean;
  /** Online (agent running and connected at some point) at the end of the run. */
  onlineAtEnd: boolean;
  /** Version → first simulated time it booted that version. */
  ranAt: Record<string, number>;
  /** Deployment id → first simulated time the device reported `downloading`. */
  updateStartedAt: Record<string, number>;
  /** Version → simulated times it came back to another version after running this one. */
  leftAt: Record<string, number>;
  /** The version running at the end; null if the device is dead. */
  finalVersion: string | null;
  /** Killed by its firmware (a `brick` behaviour): the scenario's doing. */
  brickedByFirmware: { version: string; at: number } | null;
  /** Left without a bootable slot: the system's doing. Must never happen. */
  brickedBySystem: { at: number; reason: string } | null;
  /** Was sent a corrupted image and refused it (hash mismatch): it keeps its version, as it must. */
  refusedCorruptImage: boolean;
}

/** The coordinator's record of one wave (from its deployment state). */
export interface WaveRecord {
  index: number;
  percent: number;
  status: string;
  startedAt?: number;
  completedAt?: number;
  verdict?: string;
  counts: { tracked: number; committed: number; failed: number; trialFailures: number; timedOut: number; inProgress: number; offline: number; ineligible: number };
}

/** One decision the coordinator recorded. */
export interface DecisionView {
  wave: number;
  at: number;
  source: string;
  recommendation: string;
  riskLevel: string;
  rule: string;
  issues: string[];
  analyzers: { name: string; ok: boolean; recommendation?: string; rule?: string; error?: string }[];
}

/** One device's progress as the coordinator tracked it. */
export interface ProgressView {
  deviceId: string;
  wave: number;
  state: string;
  reason?: string;
  detail?: string;
  rollback?: { status: string };
  timedOut: boolean;
}

/** Everything the report needs about one release's deployment. */
export interface ReleaseRun {
  release: Release;
  /** The version devices ran before (the base or the previous release). */
  previousVersion: string;
  deploymentId: string;
  /** The deployment's bucket offset: which devices each wave covers. */
  bucketOffset: number;
  /** Devices a wave's gate needs reporting to judge (the waves' `minDevicesReporting`). */
  minDevicesReporting: number;
  /** The coordinator's warnings when the deployment was created (canary waves too small to judge). */
  warnings: string[];
  startedAt: number;
  endedAt: number;
  phase: string;
  abortReason?: string;
  waves: WaveRecord[];
  decisions: DecisionView[];
  progress: ProgressView[];
  rollback?: { startedAt: number; completedAt?: number; exposed: number; confirmed: number; unreachable: number };
}

export interface WaveReport {
  index: number;
  percent: number;
  status: string;
  targeted: number;
  installed: number;
  committed: number;
  fellBack: number;
  rolledBack: number;
  silent: number;
  /** Members that failed, by why (`state:reason`, or `timed-out` for silence past the wave deadline). */
  failures: Record<string, number>;
  verdict: string | null;
  decision: { recommendation: string; rule: string; issues: string[] } | null;
}

export interface ReleaseReport {
  version: string;
  previousVersion: string;
  behaviour: Behaviour;
  expect: 'complete' | 'abort';
  deploymentId: string;
  /** The coordinator's warnings at creation, e.g. a first wave too small to judge. */
  warnings: string[];
  outcome: string;
  /** Did the system do the right thing with this release? */
  ok: boolean;
  problems: string[];
  waves: WaveReport[];
  decisions: DecisionView[];
  /** Devices that booted the release. */
  exposure: number;
  /** What stopped the rollout: `gate` (an Abort decision), `monitor-limit`, or null. */
  detectedBy: 'gate' | 'monitor-limit' | null;
  /**
   * For aborted releases: the devices of the waves up to the first that had enough members to judge
   * (usually the first non-empty one), plus later-wave devices still installing when the abort fired.
   */
  exposureBound: number | null;
  timeToDetectMs: number | null;
  timeToFullRollbackMs: number | null;
  bricked: { byFirmware: number; bySystem: number };
  /** Exposed devices (not killed by the firmware) that did not end on their previous version. */
  notBack: string[];
  falseAbort: boolean;
  /** Online devices at the end, and how many of them run this release. */
  reach: { online: number; onVersion: number; refusedCorrupt: number };
  durationMs: number;
}

export interface SimulationReport {
  v: 1;
  kind: 'simulation-report';
  scenario: string;
  description: string;
  seed: string | number;
  devices: number;
  /** Child processes that hosted the devices (0: the simulator's own process). */
  deviceProcesses: number;
  fleet: { models: Record<string, number>; offline: number; slowLinks: number };
  /** Target time scale. */
  timeScale: number;
  /** How simulated time really ran: effective scale, how far it was slowed, event-loop lag. */
  clock: ClockStats;
  broker: string;
  startedAt: string;
  wallMs: number;
  /** Simulated ms covered. */
  simulatedMs: number;
  faults: Record<string, number>;
  releases: ReleaseReport[];
  ok: boolean;
}

/** What the exposure bound counts, in the words the report prints. */
export const BOUND_TEXT = 'the first wave large enough to judge + devices still installing when the abort fired';

const ABORT_PHASES = new Set(['aborted', 'rolling-back', 'rolled-back']);
/** Refusals that say a manifest was not meant for the device: neither success nor failure. */
const INELIGIBLE = new Set(['wrong-hardware', 'version-not-installable', 'missing-tags', 'below-security-floor', 'superseded', 'busy']);
/** Final device states that say the update failed on the device (a coordinator-ordered rollback does not). */
const FAILED_STATES = new Set(['failed', 'rejected', 'rolled-back', 'rolling-back']);

/**
 * Why members of a wave failed, counted: the first place to look when a gate saw install failures.
 * A refusal for ineligibility or a coordinator-ordered rollback is not a failure and is not counted.
 */
export function failureReasons(members: readonly ProgressView[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of members) {
    let key: string | null = null;
    if (m.timedOut && !FAILED_STATES.has(m.state)) key = `timed-out in ${m.state}`;
    else if (FAILED_STATES.has(m.state) && m.reason !== undefined && m.reason !== 'rollback-command' && !INELIGIBLE.has(m.reason)) key = `${m.state}:${m.reason}`;
    if (key !== null) out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** Builds one release's report from the coordinator's records and the devices' ground truth. */
export function releaseReport(run: ReleaseRun, truth: readonly DeviceTruth[]): ReleaseReport {
  const { release } = run;
  const version = release.version;
  const byWave = new Map<number, ProgressView[]>();
  for (const p of run.progress) {
    const list = byWave.get(p.wave) ?? [];
    list.push(p);
    byWave.set(p.wave, list);
  }
  const truthById = new Map(truth.map((t) => [t.deviceId, t] as const));
  const ran = (id: string): boolean => truthById.get(id)?.ranAt[version] !== undefined;

  const waves: WaveReport[] = run.waves.map((w) => {
    const members = byWave.get(w.index) ?? [];
    const decision = [...run.decisions].reverse().find((d) => d.wave === w.index) ?? null;
    return {
      index: w.index,
      percent: w.percent,
      status: w.status,
      targeted: w.counts.tracked,
      installed: members.filter((m) => ran(m.deviceId)).length,
      committed: w.counts.committed,
      fellBack: w.counts.trialFailures,
      rolledBack: members.filter((m) => m.rollback?.status === 'confirmed' || m.state === 'rolled-back').length,
      silent: w.counts.timedOut,
      failures: failureReasons(members),
      verdict: w.verdict ?? null,
      decision: decision ? { recommendation: decision.recommendation, rule: decision.rule, issues: decision.issues.slice(0, 5) } : null,
    };
  });

  const exposed = truth.filter((t) => t.ranAt[version] !== undefined);
  const aborted = ABORT_PHASES.has(run.phase);
  // The decision that stopped the rollout: a gate's or an early hard limit's Abort, or the engine's own
  // Abort at the Monitor limit (source `monitor-limit`).
  const abortDecision = run.decisions.find((d) => d.recommendation === 'Abort') ?? null;
  let exposureBound: number | null = null;
  if (abortDecision) {
    // A wave's members are the devices its buckets cover that took the update, and those the
    // coordinator tracked in it: in a wide wave every member installs at once, before most have spoken.
    const percents = run.waves.map((w) => w.percent);
    const waveOf = new Map<string, number>(run.progress.map((p) => [p.deviceId, p.wave] as const));
    for (const t of truth) {
      if (t.updateStartedAt[run.deploymentId] !== undefined && !waveOf.has(t.deviceId)) waveOf.set(t.deviceId, waveOfBucket(bucketOf(t.deviceId), run.bucketOffset, percents));
    }
    // The expected exposure: the first wave that had members (a small fleet's 1 % wave can be empty and
    // pass at once) — or, where it was too small to judge (the coordinator warned at creation), every
    // wave up to the first whose members reach that size. Plus the devices of later waves that were
    // still installing when the abort fired: started, but not yet running the new version. A later wave
    // that had already booted the release is over the bound.
    const sizes = new Map<number, number>();
    for (const w of waveOf.values()) if (w >= 0) sizes.set(w, (sizes.get(w) ?? 0) + 1);
    let judgedAt = -1;
    let members = 0;
    for (const i of [...sizes.keys()].sort((a, b) => a - b)) {
      members += sizes.get(i)!;
      judgedAt = i;
      if (members >= run.minDevicesReporting) break;
    }
    const expected = new Set([...waveOf].filter(([, w]) => w >= 0 && w <= judgedAt).map(([id]) => id));
    const stillInstalling = truth.filter((t) => {
      const at = t.updateStartedAt[run.deploymentId];
      const ran = t.ranAt[version];
      return !expected.has(t.deviceId) && at !== undefined && at <= abortDecision.at && (ran === undefined || ran > abortDecision.at);
    }).length;
    exposureBound = expected.size + stillInstalling;
  }
  const notBack = exposed
    .filter((t) => !t.brickedByFirmware && t.finalVersion !== run.previousVersion)
    .map((t) => t.deviceId);
  let timeToFullRollbackMs: number | null = null;
  if (abortDecision && exposed.length) {
    let latest = abortDecision.at;
    for (const t of exposed) {
      if (t.brickedByFirmware) continue;
      const left = t.leftAt[version];
      if (left === undefined || t.finalVersion === version) {
        latest = Number.POSITIVE_INFINITY;
        break;
      }
      latest = Math.max(latest, left);
    }
    timeToFullRollbackMs = Number.isFinite(latest) ? latest - abortDecision.at : null;
  } else if (abortDecision) {
    timeToFullRollbackMs = 0;
  }
  const bricked = {
    byFirmware: truth.filter((t) => t.brickedByFirmware?.version === version).length,
    bySystem: truth.filter((t) => t.brickedBySystem && t.brickedBySystem.at >= run.startedAt && t.brickedBySystem.at <= run.endedAt).length,
  };
  // A device that refused a corrupted image did the right thing; it is not expected on the version.
  const online = truth.filter((t) => t.onlineAtEnd && !t.refusedCorruptImage);
  const reach = {
    online: online.length,
    onVersion: online.filter((t) => t.finalVersion === version).length,
    refusedCorrupt: truth.filter((t) => t.refusedCorruptImage).length,
  };

  const problems: string[] = [];
  if (bricked.bySystem > 0) problems.push(`${bricked.bySystem} device(s) left without a bootable slot by the system`);
  if (release.expect === 'complete') {
    if (aborted) problems.push(`false abort: ${run.abortReason ?? abortDecision?.rule ?? 'aborted'}`);
    else if (run.phase !== 'completed') problems.push(`rollout did not complete (phase ${run.phase})`);
    if (reach.onVersion < reach.online) problems.push(`${reach.online - reach.onVersion} online device(s) not on ${version}`);
  } else {
    if (!aborted) problems.push(`bad release not aborted (phase ${run.phase})`);
    if (exposureBound !== null && exposed.length > exposureBound) {
      problems.push(`exposure ${exposed.length} exceeds the bound ${exposureBound} (${BOUND_TEXT})`);
    }
    if (notBack.length) problems.push(`${notBack.length} exposed device(s) not back on ${run.previousVersion}`);
  }
  return {
    version,
    previousVersion: run.previousVersion,
    behaviour: release.behaviour,
    expect: release.expect,
    deploymentId: run.deploymentId,
    warnings: run.warnings,
    outcome: run.phase,
    ok: problems.length === 0,
    problems,
    waves,
    decisions: run.decisions,
    exposure: exposed.length,
    detectedBy: abortDecision ? (abortDecision.source === 'monitor-limit' ? 'monitor-limit' : 'gate') : null,
    exposureBound,
    timeToDetectMs: abortDecision ? abortDecision.at - run.startedAt : null,
    timeToFullRollbackMs,
    bricked,
    notBack,
    falseAbort: release.expect === 'complete' && aborted,
    reach,
    durationMs: run.endedAt - run.startedAt,
  };
}
