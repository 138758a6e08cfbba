/**
 * Calibration of the statistical judge on freshly generated fleets (fixed seeds, so deterministic):
 * how often a healthy release is held or rolled back, and how often each labelled regression gets its
 * labelled verdict. CI runs a small sample; FLEET_CALIBRATION_RUNS=200 measures properly and prints a
 * table (the numbers in the report come from that run).
 */
import { describe, expect, it } from 'vitest';
import { CanarySnapshotSchema, type Recommendation } from '../../protocol/canary.js';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { judgeSnapshot } from '../../coordinator/canary/stat-judge.js';
import { makeScenario, SCENARIOS } from './generate-snapshots.js';

const runs = Number(process.env['FLEET_CALIBRATION_RUNS'] ?? '12');

function tally(name: string): Record<Recommendation, number> {
  const out: Record<Recommendation, number> = { Proceed: 0, Monitor: 0, Abort: 0 };
  for (let i = 0; i < runs; i++) {
    const snap = CanarySnapshotSchema.parse(makeScenario(name, 10_000 + i * 7919));
    out[judgeSnapshot(snap, DEFAULT_GATE_POLICY).recommendation]++;
  }
  return out;
}

describe(`judge calibration over ${runs} fresh fleets per scenario`, () => {
  const rows: string[] = [];
  for (const [name, [label]] of Object.entries(SCENARIOS)) {
    it(`${name} → ${label}`, () => {
      const t = tally(name);
      rows.push(`${name.padEnd(26)} label ${label.padEnd(8)} Proceed ${t.Proceed}  Monitor ${t.Monitor}  Abort ${t.Abort}  (agree ${((100 * t[label]) / runs).toFixed(0)}%)`);
      // Never roll back a healthy or merely noisy release; never wave through a labelled Abort.
      if (label === 'Proceed') expect(t.Abort).toBe(0);
      if (label === 'Abort') expect(t.Proceed).toBe(0);
      // The labelled verdict is the usual one.
      expect(t[label] / runs).toBeGreaterThanOrEqual(0.75);
    });
  }
  it('prints the table', () => {
    console.info(rows.join('\n'));
    expect(rows.length).toBe(Object.keys(SCENARIOS).length);
  });
});
