/**
 * What the operator CLI prints, as pure functions: deployment status that fits a 100-column terminal,
 * the change log of a piped `deploy status --watch`, gate decisions numbered from 1 as the status
 * table numbers waves, and one error line per failure (cli-errors.ts).
 */
import { describe, expect, it } from 'vitest';
import { changedLines, renderStatus, type DeploymentView } from '../../coordinator/cli/deploy-status.js';
import { describeCliError, exitCodeOf } from '../../runtime/cli-errors.js';
import { fit, remaining } from '../../coordinator/cli/format.js';
import { formatDecisions } from '../../coordinator/canary/decisions-cli.js';
import { ConfigError } from '../../protocol/errors.js';
import type { WaveCounts, WaveView } from '../../protocol/deployment-view.js';
import { DecisionRecordSchema } from '../../coordinator/gate/decision.js';

const NOW = 1_800_000_000_000;
const counts = (over: Partial<WaveCounts> = {}): WaveCounts => ({ tracked: 0, offline: 0, waiting: 0, inProgress: 0, committed: 0, failed: 0, trialFailures: 0, timedOut: 0, ineligible: 0, reporting: 0, ...over });
const wave = (w: Pick<WaveView, 'index' | 'percent' | 'status' | 'requiresApproval' | 'counts'> & Partial<WaveView>): WaveView => ({ soakMs: 1_800_000, deadlineMs: 3_600_000, approved: !w.requiresApproval, monitorCount: 0, ...w });

function view(over: Partial<DeploymentView> = {}): DeploymentView {
  return {
    id: 'd-20260101-1.1.0-abcdef',
    firmwareVersion: '1.1.0',
    phase: 'soaking',
    current: 1,
    paused: false,
    waitingFor: [],
    target: { hardwareModels: ['rpi4', 'cm4'], versionRange: '>=1.0.0 <2.0.0', tags: ['lab'] },
    artifact: { sha256: 'a'.repeat(64), size: 1024 },
    bucketOffset: 0,
    maintenanceWindows: [],
    waves: [
      wave({ index: 0, percent: 1, status: 'passed', requiresApproval: false, startedAt: NOW - 3_600_000, verdict: 'Proceed', counts: counts({ tracked: 12, committed: 11, timedOut: 1 }) }),
      wave({ index: 1, percent: 5, status: 'soaking', requiresApproval: false, startedAt: NOW - 600_000, soakEndsAt: NOW + 1_799_000, counts: counts({ tracked: 52, committed: 52 }) }),
      wave({ index: 2, percent: 25, status: 'pending', requiresApproval: true, counts: counts() }),
      wave({ index: 3, percent: 100, status: 'pending', requiresApproval: false, counts: counts() }),
    ],
    createdAt: NOW - 7_200_000,
    updatedAt: NOW,
    revision: 7,
    decisions: [
      {
        id: 'd-20260101-1.1.0-abcdef.w0.gate.a1',
        wave: 0,
        at: NOW - 1_000_000,
        final: {
          recommendation: 'Proceed',
          rule: 'most-cautious: hard-gates=Proceed (hard-limits:pass)',
          issues: ['stat abstained (no-control): no devices left on the old firmware to compare against; the hard limits decide this gate', 'ai failed (timeout): no answer within 30000 ms'],
        },
      },
    ],
    ...over,
  };
}

describe('deploy status', () => {
  it('fits every line in 100 columns, numbers waves and gates from 1, and shows time left as minutes and seconds', () => {
    const text = renderStatus(view(), NOW, 100);
    for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
    expect(text).toMatch(/│ 1 \(1%\) +│ passed +│/);
    expect(text).toMatch(/soaking \(29m 59s left\)/);
    expect(text).toMatch(/pending \[approval\]/);
    expect(text).toMatch(/│ 11 │ 1 \(1 silent\) │/);
    expect(text).toMatch(/^wave 1 gate \(16m ago\): Proceed by most-cautious: hard-gates=Proceed \(hard-limits:pass\)$/m);
    expect(text).toMatch(/^ {2}- stat abstained \(no-control\): no devices left .*…$/m);
  });

  it('piped --watch prints only what changed since the last poll, and each decision once', () => {
    const seen = new Map<string, string>();
    const first = changedLines(view(), seen, NOW, 100);
    expect(first[0]).toBe('phase soaking');
    expect(first.filter((l) => l.startsWith('wave 2 (5%)'))).toEqual(['wave 2 (5%): soaking, 52/52 finished, ok 52, failed 0']);
    expect(first.some((l) => l.startsWith('wave 1 gate'))).toBe(true);
    // The same state a poll later (the soak's countdown moved on): nothing to print.
    expect(changedLines(view(), seen, NOW + 2_000, 100)).toEqual([]);
    const next = view({ phase: 'rolling', current: 2, waitingFor: [] });
    next.waves[2] = { ...next.waves[2]!, status: 'rolling', startedAt: NOW, counts: counts({ tracked: 256, committed: 3, inProgress: 200 }) };
    expect(changedLines(next, seen, NOW + 4_000, 100)).toEqual(['phase rolling', 'wave 3 (25%): rolling, 3/256 finished, ok 3, failed 0']);
  });

  it('formats a duration left and cuts a long line with an ellipsis', () => {
    expect([remaining(45_000), remaining(725_000), remaining(7_800_000), remaining(-5)]).toEqual(['45s', '12m 5s', '2h 10m', '0s']);
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(fit('abc', 4)).toBe('abc');
  });
});

describe('deploy decisions', () => {
  it('numbers waves from 1, shows each decision id, and says the statistical judge abstained', () => {
    const record = DecisionRecordSchema.parse({
      id: 'dep-1.w0.gate.a1',
      deploymentId: 'dep-1',
      wave: 0,
      attempt: 1,
      at: NOW,
      source: 'gate',
      inputsDigest: 'a'.repeat(64),
      analyzers: [
        { name: 'hard-gates', role: 'hard', ok: true, latencyMs: 1, verdict: { recommendation: 'Proceed', riskLevel: 'Low', rule: 'hard-limits:pass', issues: [], evidence: [] }, applied: 'Proceed' },
        { name: 'stat', role: 'statistical', ok: false, latencyMs: 0, error: { code: 'no-control', message: 'no devices left on the old firmware' } },
      ],
      final: { recommendation: 'Proceed', riskLevel: 'Low', rule: 'most-cautious: hard-gates=Proceed (hard-limits:pass)', issues: [] },
      policy: {},
    });
    const text = formatDecisions([record]);
    expect(text).toMatch(/ wave 1 attempt 1 {2}\[gate\]/);
    expect(text).toMatch(/id dep-1\.w0\.gate\.a1; rule: most-cautious/);
    expect(text).toMatch(/stat \(statistical, 0 ms\): abstained no-control — no devices left on the old firmware \(not a verdict\)/);
  });
});

describe('CLI error lines', () => {
  it('one line per error: a FleetError with its code, a file error with its path, anything else labelled unexpected', () => {
    expect(describeCliError(new ConfigError('--waves is wrong'))).toBe('error [config]: --waves is wrong');
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'nope.json'"), { code: 'ENOENT', syscall: 'open', path: 'nope.json' });
    expect(describeCliError(enoent)).toBe('error [ENOENT]: cannot read nope.json: no such file or directory; check the path and its permissions');
    const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE', address: '127.0.0.1', port: 1883 });
    expect(describeCliError(inUse)).toBe('error [EADDRINUSE]: cannot listen on 127.0.0.1:1883: another process is using that port; stop it or choose another port');
    expect(describeCliError(new TypeError('x is not a function\n    at somewhere'))).toBe('error: x is not a function (unexpected; rerun with FLEET_DEBUG=1 for the stack trace)');
    expect(describeCliError(new Error('boom'), true)).toMatch(/^error: boom .*\nError: boom\n {4}at /);
    expect([exitCodeOf(new ConfigError('x')), exitCodeOf(enoent), exitCodeOf(new Error('boom'))]).toEqual([2, 2, 1]);
  });
});
