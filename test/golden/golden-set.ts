/**
 * The labelled golden set: each case is a seeded synthetic fleet (simulator/bench/calibration/
 * canary-fleet.ts) whose telemetry messages and canary statuses go through the real telemetry store and
 * snapshot builder (coordinator/canary/telemetry-replay.ts) into a v2 snapshot. Labels and their
 * reasons come from RUBRIC.md — what a careful reliability engineer would decide — not from the judge's
 * thresholds. `generate.ts` writes the snapshots and labels.json; the golden test checks the committed
 * files equal what this produces and that the judge agrees with every label.
 */
import type { CanarySnapshot, Recommendation } from '../../protocol/canary.js';
import { snapshotFromTelemetry } from '../../coordinator/canary/telemetry-replay.js';
import { generateFleet, type FleetSpec } from '../../simulator/bench/calibration/canary-fleet.js';
import { definedProps } from '../../firmware/defined-props.js';

export interface GoldenCase {
  label: Recommendation;
  /** The rubric rules (RUBRIC.md) that decide the label. */
  rubric: string[];
  description: string;
  spec: Partial<FleetSpec>;
}

const INTERVAL_MIN = 10;

/** A mixed fleet: three hardware models, two versions being upgraded from, a 24-hour soak. */
const BASE: FleetSpec = {
  seed: 1,
  hours: 24,
  intervalMin: INTERVAL_MIN,
  canary: 40,
  control: 160,
  models: { 'sensor-v2': 5, 'gateway-x': 3, 'cam-mini': 2 },
  fromVersions: { '2.0.3': 7, '2.0.1': 3 },
  toVersion: '2.1.0',
};

export const GOLDEN: Record<string, GoldenCase> = {
  'healthy-mixed': { label: 'Proceed', rubric: ['R1'], description: 'nothing changed; three models, two from-versions', spec: { seed: 101 } },
  'noisy-mixed': { label: 'Proceed', rubric: ['R1'], description: 'devices vary 2.5 times as much as usual, no change', spec: { seed: 102, noise: 2.5 } },
  'cpu-improvement': { label: 'Proceed', rubric: ['R2'], description: 'CPU 20 % lower on every canary', spec: { seed: 103, effect: { cpu: 0.8 } } },
  'crash-x5': { label: 'Abort', rubric: ['R4'], description: 'crash rate ×5 on every canary', spec: { seed: 104, effect: { rates: { crashes: 5 } } } },
  'crash-x4-one-model': { label: 'Abort', rubric: ['R4', 'R5'], description: 'crash rate ×4 on gateway-x canaries only, the other models unchanged', spec: { seed: 105, effect: { models: ['gateway-x'], rates: { crashes: 4 } } } },
  'crash-x5-one-from-version': { label: 'Abort', rubric: ['R4', 'R5'], description: 'crash rate ×5 on canaries updated from 2.0.1 (half the fleet) only', spec: { seed: 106, fromVersions: { '2.0.3': 1, '2.0.1': 1 }, effect: { fromVersions: ['2.0.1'], rates: { crashes: 5 } } } },
  'crash-storm-last-hours': { label: 'Abort', rubric: ['R4', 'R7'], description: 'canaries crash ×10 from 22 h into the 24 h soak', spec: { seed: 107, effect: { onsetH: 22, rates: { crashes: 10 } } } },
  'leak-onset-midway': { label: 'Abort', rubric: ['R6', 'R7'], description: 'memory grows 0.6 MB/h (14 MB/day) from 12 h into the soak', spec: { seed: 108, effect: { onsetH: 12, memLeakMbPerH: 0.6 } } },
  'battery-telemetry-lost': { label: 'Monitor', rubric: ['R8'], description: 'the release stops reporting battery level', spec: { seed: 109, effect: { dropMetrics: ['batteryPct'] } } },
  'control-outage': { label: 'Proceed', rubric: ['R1', 'R9'], description: 'no change; 40 % of the control silent from 6 h to 14 h', spec: { seed: 110, controlOutage: { fromH: 6, toH: 14, share: 0.4 } } },
  'offline-gaps-queued': { label: 'Proceed', rubric: ['R1', 'R10'], description: 'no change; a quarter of the canaries offline 4 h, sending their queued telemetry at reconnect', spec: { seed: 111, offline: [{ cohort: 'canary', share: 0.25, fromH: 6, toH: 10, queued: true }] } },
  'offline-power-off': { label: 'Proceed', rubric: ['R1', 'R10'], description: 'no change; 20 % of the canaries and control powered off for 5 h', spec: { seed: 112, offline: [{ cohort: 'both', share: 0.2, fromH: 8, toH: 13, queued: false }] } },
  'one-pathological-device': { label: 'Monitor', rubric: ['R11'], description: 'one canary crashes twice an hour, the others are normal', spec: { seed: 113, pathological: { count: 1, crashesPerH: 2 } } },
  'fleet-wide-incident': { label: 'Monitor', rubric: ['R12'], description: 'crashes ×6 on every device, canary and control, from 8 h to 16 h', spec: { seed: 114, fleetWide: { fromH: 8, toH: 16, rates: { crashes: 6, reboots: 3 } } } },
  'trial-failures': { label: 'Abort', rubric: ['R3'], description: 'two canaries fail their trial boot and fall back', spec: { seed: 115, trialFailures: 2 } },
  'silent-after-install': { label: 'Abort', rubric: ['R3'], description: 'four canaries go silent 20 minutes after installing', spec: { seed: 116, silentAfterInstall: 4 } },
  'new-crash-signature': { label: 'Abort', rubric: ['R4', 'R13'], description: 'crash rate ×2.5 with a panic never seen in control', spec: { seed: 117, effect: { rates: { crashes: 2.5 }, crashLine: 'kernel: panic in ota_apply+0x<n>' } } },
  'cpu-up-one-model': { label: 'Monitor', rubric: ['R15'], description: 'CPU ×1.3 on cam-mini canaries only', spec: { seed: 118, effect: { models: ['cam-mini'], cpu: 1.3 } } },
  'small-battery-drain': { label: 'Monitor', rubric: ['R15'], description: 'battery drains 12 % faster on canaries', spec: { seed: 119, effect: { drain: 1.12 } } },
  'too-short-soak': { label: 'Monitor', rubric: ['R14'], description: 'no change, but the soak lasted one hour', spec: { seed: 120, hours: 1, intervalMin: 2 } },
};

/** The fleet spec of a case, on the shared base. */
export function caseSpec(name: string, seed?: number): FleetSpec {
  const c = GOLDEN[name];
  if (!c) throw new RangeError(`unknown golden case ${name}`);
  return { ...BASE, ...c.spec, ...definedProps({ seed }) };
}

/** Builds a case's snapshot through the real telemetry store and snapshot builder. */
export function buildCase(name: string, seed?: number): Promise<CanarySnapshot> {
  const spec = caseSpec(name, seed);
  const fleet = generateFleet(spec);
  const gapMs = 4 * spec.intervalMin * 60_000;
  // Rollup slots of about 1/48 of the window (the store's option; the coordinator's default is 1 minute):
  // the snapshot's 12 slots are whole rollup slots either way, and the set builds in seconds.
  const rollupSlotMs = Math.max(60_000, Math.floor((spec.hours * 3_600_000) / 48 / 60_000) * 60_000);
  return snapshotFromTelemetry({
    deploymentId: `golden-${name}`,
    wave: 0,
    toVersion: fleet.toVersion,
    window: fleet.window,
    devices: fleet.devices,
    telemetry: fleet.telemetry,
    statuses: fleet.statuses,
    store: { maxExposureGapMs: gapMs, rollupSlotMs },
    silentAfterMs: gapMs,
  });
}
