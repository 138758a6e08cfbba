/**
 * The update state machine, pure: a table of transitions, then every crash point (the agent killed,
 * or the power cut, between any two effects) of whole rollouts against a model device.
 */
import { describe, expect, it } from 'vitest';
import { buildManifest } from '../../firmware/manifest.js';
import { initialAgentState, type AgentState, type Job } from '../../agent/agent-state.js';
import { step, MAX_BUSY_RETRIES, MAX_REBOOT_RETRIES, MAX_TRIAL_RETRIES, type UpdateEvent } from '../../agent/update-machine.js';
import type { Command } from '../../protocol/signed.js';
import { CFG, newWorld, run } from './machine-world.js';
import { definedProps } from '../../firmware/defined-props.js';

const manifest = buildManifest({
  firmwareVersion: '1.1.0',
  hardware: ['rpi4'],
  artifact: { url: 'http://127.0.0.1/fw.img', size: 1000, sha256: 'a'.repeat(64) },
  deploymentId: 'd1',
  securityVersion: 2,
  issuedAt: 0,
});

const base = (): AgentState => ({ ...initialAgentState('1.0.0', 'A'), slotVersions: { A: '1.0.0', B: '0.9.0' }, lastBootId: 'b1' });

function job(stage: Job['stage'], extra: Partial<Job> = {}): Job {
  return {
    kind: 'install',
    deploymentId: 'd1',
    wave: 0,
    stage,
    fromVersion: '1.0.0',
    toVersion: '1.1.0',
    fromSlot: 'A',
    toSlot: 'B',
    artifact: { url: manifest.artifact.url, size: 1000, sha256: manifest.artifact.sha256 },
    securityVersion: 2,
    attempts: 0,
    bytes: 0,
    reportedTenths: 0,
    rebootRetries: 0,
    updatedAt: 0,
    ...extra,
  };
}

const withJob = (j: Job, extra: Partial<AgentState> = {}): AgentState => ({ ...base(), job: j, ...extra });
const boot = (booted: 'A' | 'B', primary: 'A' | 'B', bootId = 'b1'): UpdateEvent => ({ type: 'boot', boot: { booted, primary, trial: booted !== primary, bootId } });
const command = (action: Command['action'], deploymentId?: string): Command => ({
  _type: 'command',
  v: 1,
  commandId: `c-${action}`,
  deviceId: 'dev',
  action,
  ...definedProps({ deploymentId }),
  issuedAt: '2026-01-01T00:00:00Z',
  expiresAt: '2026-01-02T00:00:00Z',
  seq: 100,
});
const ok: UpdateEvent = { type: 'rollout', deploymentId: 'd1', wave: 0, verified: { ok: true, value: manifest, keyIds: ['k'] } };

interface Row {
  name: string;
  state: AgentState;
  event: UpdateEvent;
  stage?: Job['stage'] | null;
  result?: string;
  reason?: string;
  effects: string[];
}

const rows: Row[] = [
  { name: 'idle + verified rollout → downloading', state: base(), event: ok, stage: 'downloading', effects: ['report', 'download'] },
  {
    name: 'idle + refused rollout → rejected, nothing downloaded',
    state: base(),
    event: { type: 'rollout', deploymentId: 'd1', wave: 0, verified: { ok: false, reason: 'expired', detail: 'old' } },
    stage: 'done',
    result: 'rejected',
    reason: 'expired',
    effects: ['report'],
  },
  {
    name: 'rollout of the running version → already-installed',
    state: { ...base(), slotVersions: { A: '1.1.0' } },
    event: ok,
    stage: 'done',
    result: 'already-installed',
    effects: ['report'],
  },
  {
    name: 'manifest signed for another deployment → rejected malformed',
    state: base(),
    event: { ...ok, deploymentId: 'other' },
    stage: 'done',
    result: 'rejected',
    reason: 'malformed',
    effects: ['report'],
  },
  { name: 'handled deployment redelivered → ignored', state: { ...base(), handled: ['d1'] }, event: ok, stage: null, effects: [] },
  { name: 'same deployment redelivered while downloading → ignored', state: withJob(job('downloading')), event: ok, stage: 'downloading', effects: [] },
  {
    name: 'new deployment supersedes a download',
    state: withJob(job('downloading', { deploymentId: 'd0' })),
    event: ok,
    stage: 'downloading',
    effects: ['cancel-download', 'discard-download', 'report', 'report', 'download'],
  },
  { name: 'new deployment waits while in trial', state: withJob(job('trial', { deploymentId: 'd0' })), event: ok, stage: 'trial', effects: ['log'] },
  { name: 'progress below the next tenth → no report', state: withJob(job('downloading')), event: { type: 'download-progress', deploymentId: 'd1', bytes: 50 }, stage: 'downloading', effects: [] },
  { name: 'progress crossing a tenth → report', state: withJob(job('downloading')), event: { type: 'download-progress', deploymentId: 'd1', bytes: 500 }, stage: 'downloading', effects: ['report'] },
  {
    name: 'progress crossing a tenth sooner than the interval after the last report → no report',
    state: withJob(job('downloading', { updatedAt: 10_000 - CFG.progressIntervalMs + 1 })),
    event: { type: 'download-progress', deploymentId: 'd1', bytes: 500 },
    stage: 'downloading',
    effects: [],
  },
  { name: 'progress at 100 % → no report (verifying follows)', state: withJob(job('downloading', { reportedTenths: 9 })), event: { type: 'download-progress', deploymentId: 'd1', bytes: 1000 }, stage: 'downloading', effects: [] },
  { name: 'download finished → verifying', state: withJob(job('downloading')), event: { type: 'download-finished', deploymentId: 'd1' }, stage: 'verifying', effects: ['report', 'verify'] },
  {
    name: 'retryable failure → backoff',
    state: withJob(job('downloading')),
    event: { type: 'download-failed', deploymentId: 'd1', reason: 'download-failed', detail: '404', retryable: true },
    stage: 'downloading',
    effects: ['log', 'schedule-retry'],
  },
  {
    name: 'retryable failure with attempts exhausted → failed',
    state: withJob(job('downloading', { attempts: CFG.maxDownloadAttempts - 1 })),
    event: { type: 'download-failed', deploymentId: 'd1', reason: 'download-failed', detail: '404', retryable: true },
    stage: 'done',
    result: 'failed',
    reason: 'download-failed',
    effects: ['report', 'discard-download'],
  },
  {
    name: 'hash mismatch while streaming → failed at once',
    state: withJob(job('downloading')),
    event: { type: 'download-failed', deploymentId: 'd1', reason: 'hash-mismatch', detail: 'x', retryable: false },
    stage: 'done',
    result: 'failed',
    reason: 'hash-mismatch',
    effects: ['report', 'discard-download'],
  },
  {
    name: 'busy server (503) with the attempts nearly spent → retry later, no attempt spent',
    state: withJob(job('downloading', { attempts: CFG.maxDownloadAttempts - 1 })),
    event: { type: 'download-failed', deploymentId: 'd1', reason: 'download-failed', detail: '503', retryable: true, busy: true, retryAfterMs: 5000 },
    stage: 'downloading',
    effects: ['log', 'schedule-retry'],
  },
  {
    name: 'busy refusals past their bound count as attempts → failed',
    state: withJob(job('downloading', { attempts: CFG.maxDownloadAttempts - 1, busyRetries: MAX_BUSY_RETRIES })),
    event: { type: 'download-failed', deploymentId: 'd1', reason: 'download-failed', detail: '503', retryable: true, busy: true },
    stage: 'done',
    result: 'failed',
    reason: 'download-failed',
    effects: ['report', 'discard-download'],
  },
  { name: 'retry due → download again', state: withJob(job('downloading', { retryAt: 5 })), event: { type: 'retry-due', deploymentId: 'd1' }, stage: 'downloading', effects: ['download'] },
  { name: 'stale event for another deployment → ignored', state: withJob(job('downloading')), event: { type: 'download-finished', deploymentId: 'zz' }, stage: 'downloading', effects: [] },
  { name: 'verified → installing', state: withJob(job('verifying')), event: { type: 'verify-done', deploymentId: 'd1', ok: true }, stage: 'installing', effects: ['report', 'write-slot'] },
  {
    name: 'verify mismatch → failed, never written',
    state: withJob(job('verifying')),
    event: { type: 'verify-done', deploymentId: 'd1', ok: false },
    stage: 'done',
    result: 'failed',
    reason: 'hash-mismatch',
    effects: ['report', 'discard-download'],
  },
  { name: 'slot written → rebooting: arm then reboot', state: withJob(job('installing')), event: { type: 'slot-written', deploymentId: 'd1' }, stage: 'rebooting', effects: ['report', 'arm-trial', 'reboot'] },
  {
    name: 'slot readback failed → failed',
    state: withJob(job('installing')),
    event: { type: 'slot-failed', deploymentId: 'd1', reason: 'readback-failed', detail: 'x' },
    stage: 'done',
    result: 'failed',
    reason: 'readback-failed',
    effects: ['report', 'discard-download'],
  },
  { name: 'boot into the trial → trial + health checks', state: withJob(job('rebooting', { bootId: 'b1' })), event: boot('B', 'A', 'b2'), stage: 'trial', effects: ['report', 'start-trial'] },
  { name: 'restart before the reboot happened → arm and reboot again', state: withJob(job('rebooting', { bootId: 'b1' })), event: boot('A', 'A', 'b1'), stage: 'rebooting', effects: ['report', 'arm-trial', 'reboot'] },
  {
    name: 'restart loop on the same boot is bounded',
    state: withJob(job('rebooting', { bootId: 'b1', rebootRetries: MAX_REBOOT_RETRIES })),
    event: boot('A', 'A', 'b1'),
    stage: 'done',
    result: 'rolled-back',
    reason: 'trial-boot-failed',
    effects: ['report'],
  },
  {
    name: 'bootloader fell back before the agent ran → rolled-back trial-boot-failed',
    state: withJob(job('rebooting', { bootId: 'b1' })),
    event: boot('A', 'A', 'b3'),
    stage: 'done',
    result: 'rolled-back',
    reason: 'trial-boot-failed',
    effects: ['report'],
  },
  {
    name: 'trial interrupted after the agent came up (power cut), bootloader fell back → retry the trial once',
    state: withJob(job('trial', { bootId: 'b1', trialStartedAt: 5 }), { lastBootId: 'b2' }),
    event: boot('A', 'A', 'b3'),
    stage: 'rebooting',
    reason: 'trial-interrupted',
    effects: ['report', 'log', 'arm-trial', 'reboot'],
  },
  {
    name: 'mark-good interrupted by a power cut, bootloader fell back → retry the trial once',
    state: withJob(job('committing', { bootId: 'b1' })),
    event: boot('A', 'A', 'b3'),
    stage: 'rebooting',
    reason: 'trial-interrupted',
    effects: ['report', 'log', 'arm-trial', 'reboot'],
  },
  {
    name: 'retried trial interrupted again → rolled-back trial-boot-failed',
    state: withJob(job('trial', { bootId: 'b3', trialRetries: MAX_TRIAL_RETRIES })),
    event: boot('A', 'A', 'b5'),
    stage: 'done',
    result: 'rolled-back',
    reason: 'trial-boot-failed',
    effects: ['report'],
  },
  {
    name: 'retried trial never reached the agent (boot loop) → rolled-back trial-boot-failed',
    state: withJob(job('rebooting', { bootId: 'b3', trialRetries: 1, reason: 'trial-interrupted' })),
    event: boot('A', 'A', 'b4'),
    stage: 'done',
    result: 'rolled-back',
    reason: 'trial-boot-failed',
    effects: ['report'],
  },
  {
    name: 'retried trial boots → trial with a fresh window',
    state: withJob(job('rebooting', { bootId: 'b3', trialRetries: 1, reason: 'trial-interrupted' })),
    event: boot('B', 'A', 'b4'),
    stage: 'trial',
    effects: ['report', 'start-trial'],
  },
  {
    name: 'interrupted rollback trial → retried, still reported as ordered by the rollback command',
    state: withJob(job('trial', { kind: 'rollback', bootId: 'b1', reason: 'rollback-command' })),
    event: boot('A', 'A', 'b3'),
    stage: 'rebooting',
    reason: 'rollback-command',
    effects: ['report', 'log', 'arm-trial', 'reboot'],
  },
  { name: 'health passed → committing: mark good', state: withJob(job('trial')), event: { type: 'health-passed', deploymentId: 'd1' }, stage: 'committing', effects: ['stop-trial', 'mark-good'] },
  {
    name: 'health failed → reverting: mark bad and reboot',
    state: withJob(job('trial')),
    event: { type: 'health-failed', deploymentId: 'd1', reason: 'health-check-failed', detail: 'x' },
    stage: 'reverting',
    effects: ['stop-trial', 'report', 'mark-bad', 'reboot'],
  },
  {
    name: 'broker unreachable → reverting',
    state: withJob(job('trial')),
    event: { type: 'health-failed', deploymentId: 'd1', reason: 'broker-unreachable', detail: 'x' },
    stage: 'reverting',
    effects: ['stop-trial', 'report', 'mark-bad', 'reboot'],
  },
  { name: 'trial window over → reverting', state: withJob(job('trial')), event: { type: 'trial-timeout', deploymentId: 'd1' }, stage: 'reverting', effects: ['stop-trial', 'report', 'mark-bad', 'reboot'] },
  {
    name: 'mark-good failed → reverting to the old slot',
    state: withJob(job('committing')),
    event: { type: 'slot-failed', deploymentId: 'd1', reason: 'internal-error', detail: 'mark-good: bootloader env write failed' },
    stage: 'reverting',
    reason: 'internal-error',
    effects: ['stop-trial', 'report', 'mark-bad', 'reboot'],
  },
  { name: 'marked good → committed', state: withJob(job('committing')), event: { type: 'marked-good', deploymentId: 'd1' }, stage: 'done', result: 'committed', effects: ['report', 'discard-download'] },
  { name: 'crash during mark-good, bootloader committed → committed', state: withJob(job('committing')), event: boot('B', 'B', 'b2'), stage: 'done', result: 'committed', effects: ['report', 'discard-download'] },
  { name: 'crash before mark-good took → mark good again', state: withJob(job('committing')), event: boot('B', 'A', 'b2'), stage: 'committing', effects: ['report', 'mark-good'] },
  {
    name: 'back on the old slot after reverting → rolled-back',
    state: withJob(job('reverting', { reason: 'health-check-failed' })),
    event: boot('A', 'A', 'b3'),
    stage: 'done',
    result: 'rolled-back',
    reason: 'health-check-failed',
    effects: ['report'],
  },
  { name: 'crash before mark-bad took → mark bad and reboot again', state: withJob(job('reverting', { reason: 'trial-timeout' })), event: boot('B', 'A', 'b2'), stage: 'reverting', effects: ['report', 'mark-bad', 'reboot'] },
  { name: 'resume download after restart', state: withJob(job('downloading', { bytes: 300 })), event: boot('A', 'A', 'b2'), stage: 'downloading', effects: ['report', 'download'] },
  { name: 'resume backoff after restart', state: withJob(job('downloading', { retryAt: 999_999 })), event: boot('A', 'A', 'b2'), stage: 'downloading', effects: ['report', 'schedule-retry'] },
  { name: 'resume verify after restart', state: withJob(job('verifying')), event: boot('A', 'A', 'b2'), stage: 'verifying', effects: ['report', 'verify'] },
  { name: 'interrupted install rewrites the inactive slot', state: withJob(job('installing')), event: boot('A', 'A', 'b2'), stage: 'installing', effects: ['report', 'write-slot'] },
  { name: 'unexpected trial with no job → mark bad and reboot', state: base(), event: boot('B', 'A', 'b2'), stage: null, effects: ['log', 'mark-bad', 'reboot'] },
  {
    name: 'abort while downloading → failed aborted',
    state: withJob(job('downloading')),
    event: { type: 'rollout-cleared' },
    stage: 'done',
    result: 'failed',
    reason: 'aborted',
    effects: ['cancel-download', 'report', 'discard-download'],
  },
  {
    name: 'abort while installing → failed aborted (never armed)',
    state: withJob(job('installing')),
    event: { type: 'rollout-cleared' },
    stage: 'done',
    result: 'failed',
    reason: 'aborted',
    effects: ['cancel-download', 'report', 'discard-download'],
  },
  {
    name: 'abort while rebooting → revert requested for the trial boot',
    state: withJob(job('rebooting', { bootId: 'b1' })),
    event: { type: 'rollout-cleared' },
    stage: 'rebooting',
    effects: ['log'],
  },
  {
    name: 'trial boot with an abort requested → reverting at once',
    state: withJob(job('rebooting', { bootId: 'b1', revertRequested: 'aborted' })),
    event: boot('B', 'A', 'b2'),
    stage: 'reverting',
    reason: 'aborted',
    effects: ['stop-trial', 'report', 'mark-bad', 'reboot'],
  },
  {
    name: 'restart before the reboot with an abort requested → no reboot into the update',
    state: withJob(job('rebooting', { bootId: 'b1', revertRequested: 'aborted' })),
    event: boot('A', 'A', 'b1'),
    stage: 'done',
    result: 'failed',
    reason: 'aborted',
    effects: ['report'],
  },
  { name: 'abort after the reboot began → trial runs its course', state: withJob(job('trial')), event: { type: 'rollout-cleared' }, stage: 'trial', effects: ['log'] },
  { name: 'abort with nothing in flight → nothing', state: base(), event: { type: 'rollout-cleared' }, stage: null, effects: [] },
  {
    name: "cancel for the job's deployment while downloading → failed aborted",
    state: withJob(job('downloading')),
    event: { type: 'rollout-cleared', deploymentId: 'd1' },
    stage: 'done',
    result: 'failed',
    reason: 'aborted',
    effects: ['cancel-download', 'report', 'discard-download'],
  },
  {
    name: "cancel for the job's deployment while rebooting → revert requested for the trial boot",
    state: withJob(job('rebooting', { bootId: 'b1' })),
    event: { type: 'rollout-cleared', deploymentId: 'd1' },
    stage: 'rebooting',
    effects: ['log'],
  },
  { name: 'cancel for another deployment → ignored', state: withJob(job('downloading')), event: { type: 'rollout-cleared', deploymentId: 'd9' }, stage: 'downloading', effects: [] },
  { name: 'cancel with nothing in flight → nothing', state: base(), event: { type: 'rollout-cleared', deploymentId: 'd1' }, stage: null, effects: [] },
  { name: 'report-now command', state: base(), event: { type: 'command', command: command('report-now') }, stage: null, effects: ['report-now'] },
  { name: 'reboot command', state: base(), event: { type: 'command', command: command('reboot') }, stage: null, effects: ['log', 'reboot'] },
  {
    name: 'rollback command after commit → rolling back to the other slot',
    state: { ...withJob(job('done', { result: 'committed' })), booted: 'B', slotVersions: { A: '1.0.0', B: '1.1.0' }, slotDeployments: { B: 'd1' } },
    event: { type: 'command', command: command('rollback', 'd1') },
    stage: 'rebooting',
    effects: ['report', 'arm-trial', 'reboot'],
  },
  {
    name: 'rollback command after a later manifest was rejected still undoes the running deployment',
    state: {
      ...withJob(job('done', { deploymentId: 'd2', result: 'rejected', reason: 'expired' })),
      booted: 'B',
      slotVersions: { A: '1.0.0', B: '1.1.0' },
      slotDeployments: { B: 'd1' },
    },
    event: { type: 'command', command: command('rollback', 'd1') },
    stage: 'rebooting',
    effects: ['report', 'arm-trial', 'reboot'],
  },
  {
    name: 'rollback command without a deployment undoes whatever runs',
    state: { ...base(), booted: 'B', slotVersions: { A: '1.0.0', B: '1.1.0' }, slotDeployments: { B: 'd1' } },
    event: { type: 'command', command: command('rollback') },
    stage: 'rebooting',
    effects: ['report', 'arm-trial', 'reboot'],
  },
  {
    name: 'rollback command on a factory image → nothing to undo',
    state: base(),
    event: { type: 'command', command: command('rollback') },
    stage: null,
    effects: ['log'],
  },
  {
    name: 'rollback command during the trial → reverting',
    state: withJob(job('trial')),
    event: { type: 'command', command: command('rollback', 'd1') },
    stage: 'reverting',
    reason: 'rollback-command',
    effects: ['stop-trial', 'report', 'mark-bad', 'reboot'],
  },
  {
    name: 'rollback command while downloading → cancelled, rolled-back',
    state: withJob(job('downloading')),
    event: { type: 'command', command: command('rollback', 'd1') },
    stage: 'done',
    result: 'rolled-back',
    reason: 'rollback-command',
    effects: ['cancel-download', 'report', 'discard-download'],
  },
  {
    name: 'rollback command for a deployment not running here → ignored',
    state: withJob(job('done', { result: 'committed', deploymentId: 'd9' })),
    event: { type: 'command', command: command('rollback', 'd1') },
    stage: 'done',
    effects: ['log'],
  },
  {
    name: 'rollback command for a failed deployment → re-reports its outcome',
    state: withJob(job('done', { result: 'failed', reason: 'hash-mismatch' })),
    event: { type: 'command', command: command('rollback', 'd1') },
    stage: 'done',
    result: 'failed',
    effects: ['log', 'report'],
  },
];

describe('update machine transitions', () => {
  it.each(rows)('$name', (row) => {
    const r = step(row.state, row.event, 10_000, CFG);
    expect(r.effects.map((e) => e.type)).toEqual(row.effects);
    if (row.stage === null) expect(r.state.job).toBeNull();
    else if (row.stage !== undefined) expect(r.state.job?.stage).toBe(row.stage);
    if (row.result !== undefined) expect(r.state.job?.result).toBe(row.result);
    if (row.reason !== undefined) expect(r.state.job?.reason).toBe(row.reason);
    // Every report carries the next seq, and seq never goes backwards.
    const reports = r.effects.filter((e) => e.type === 'report' && e.seq > row.state.seq);
    expect(r.state.seq).toBe(row.state.seq + reports.length);
  });

  it('re-sends the last report on a restart that has nothing new to say, with the same seq', () => {
    const done = withJob(job('done', { result: 'committed' }), { seq: 7 });
    const r = step(done, boot('B', 'B', 'b5'), 1, CFG);
    expect(r.effects).toEqual([expect.objectContaining({ type: 'report', state: 'committed', seq: 7 })]);
    expect(r.state.seq).toBe(7);
  });

  it.each([
    ['downloading it', withJob(job('downloading'))],
    ['writing it', withJob(job('installing'))],
    ['in its trial', withJob(job('trial'), { booted: 'B' })],
    ['committed to it', withJob(job('done', { result: 'committed' }), { booted: 'B', handled: ['d1'] })],
    ['having refused it', withJob(job('done', { result: 'rejected', reason: 'version-not-installable' }), { handled: ['d1'] })],
  ])('takes a renewed manifest of the deployment it is %s as the same update: nothing happens', (_what, state) => {
    // The coordinator re-signs a long rollout's manifest: same deployment, a later metadataVersion and expiry.
    const renewed = { ...manifest, metadataVersion: manifest.metadataVersion! + 1, expiresAt: '2030-01-01T00:00:00.000Z' };
    const r = step({ ...state, manifestVersion: manifest.metadataVersion!, manifestDeployment: 'd1' }, { ...ok, verified: { ok: true, value: renewed, keyIds: ['k'] } }, 1, CFG);
    expect(r.effects).toEqual([]);
    expect(r.state.job).toEqual(state.job);
    expect(r.state.seq).toBe(state.seq);
  });

  it('records a command seq before its effect (replay protection survives a crash)', () => {
    const r = step(base(), { type: 'command', command: command('reboot') }, 1, CFG);
    expect(r.state.commandSeq).toBe(command('reboot').seq);
    expect(r.effects).toContainEqual({ type: 'reboot' });
    // The same command again (the shell verifies the seq; the core refuses it too): nothing happens.
    const again = step(r.state, { type: 'command', command: command('reboot') }, 2, CFG);
    expect(again.state).toBe(r.state);
    expect(again.effects.some((e) => e.type === 'reboot')).toBe(false);
  });

  it('marks the inactive slot unknown from the start of the write and known after it', () => {
    const installing = step(withJob(job('verifying'), { slotDeployments: { B: 'd0' } }), { type: 'verify-done', deploymentId: 'd1', ok: true }, 1, CFG).state;
    expect(installing.slotVersions.B).toBeUndefined();
    expect(installing.slotDeployments.B).toBeUndefined();
    const written = step(installing, { type: 'slot-written', deploymentId: 'd1' }, 2, CFG).state;
    expect(written.slotVersions.B).toBe('1.1.0');
    expect(written.slotDeployments.B).toBe('d1');
  });

  it('an interrupted trial is re-armed from the fall-back boot, with its own full window', () => {
    const interrupted = step(withJob(job('trial', { bootId: 'b1', trialStartedAt: 5 })), boot('A', 'A', 'b3'), 100, CFG);
    expect(interrupted.state.job).toMatchObject({ stage: 'rebooting', bootId: 'b3', trialRetries: 1, rebootRetries: 0 });
    expect(interrupted.state.job?.trialStartedAt).toBeUndefined();
    expect(interrupted.effects[0]).toMatchObject({ type: 'report', state: 'rebooting', reason: 'trial-interrupted', fromVersion: '1.0.0', toVersion: '1.1.0' });
    // Killed before the reboot happened (same boot): armed again, not counted as a fall-back.
    const again = step(interrupted.state, boot('A', 'A', 'b3'), 200, CFG);
    expect(again.state.job).toMatchObject({ stage: 'rebooting', rebootRetries: 1 });
    const trial = step(interrupted.state, boot('B', 'A', 'b4'), 300, CFG);
    expect(trial.effects.find((e) => e.type === 'start-trial')).toMatchObject({ deadlineAt: 300 + CFG.trialWindowMs });
    const committed = step(step(trial.state, { type: 'health-passed', deploymentId: 'd1' }, 400, CFG).state, { type: 'marked-good', deploymentId: 'd1' }, 410, CFG);
    expect(committed.state.job).toMatchObject({ stage: 'done', result: 'committed' });
    expect(committed.state.job?.reason).toBeUndefined();
  });

  it('a trial interrupted twice names the attempts in its trial-boot-failed detail', () => {
    const r = step(withJob(job('trial', { bootId: 'b3', trialRetries: 1 })), boot('A', 'A', 'b5'), 1, CFG);
    expect(r.state.job?.detail).toContain('trial attempts: 2');
  });

  it('raises the security floor only on commit', () => {
    const r = step(withJob(job('committing')), { type: 'marked-good', deploymentId: 'd1' }, 1, CFG);
    expect(r.state.securityFloor).toBe(2);
    const failed = step(withJob(job('trial')), { type: 'trial-timeout', deploymentId: 'd1' }, 1, CFG);
    expect(failed.state.securityFloor).toBe(0);
  });

  it('backs off exponentially between download attempts, capped', () => {
    let s = withJob(job('downloading'));
    const delays: number[] = [];
    for (let i = 0; i < 2; i++) {
      const r = step(s, { type: 'download-failed', deploymentId: 'd1', reason: 'download-failed', detail: '503', retryable: true }, 0, CFG);
      const retry = r.effects.find((e) => e.type === 'schedule-retry');
      delays.push(retry && retry.type === 'schedule-retry' ? retry.at : -1);
      s = r.state;
    }
    expect(delays).toEqual([1000, 2000]);
  });

  it('a busy refusal keeps the attempts, counts itself, and waits for Retry-After or the backoff, whichever is longer', () => {
    const busy = (retryAfterMs?: number): UpdateEvent => ({
      type: 'download-failed',
      deploymentId: 'd1',
      reason: 'download-failed',
      detail: '503',
      retryable: true,
      busy: true,
      ...definedProps({ retryAfterMs }),
    });
    const first = step(withJob(job('downloading', { attempts: 1 })), busy(5000), 0, CFG);
    expect(first.state.job).toMatchObject({ attempts: 1, busyRetries: 1, retryAt: 5000 });
    // Backoff (base 1 s · 2^(n−1), capped at 8 s) beyond a short Retry-After.
    const later = step(withJob(job('downloading', { busyRetries: 4 })), busy(100), 0, CFG);
    expect(later.state.job).toMatchObject({ attempts: 0, busyRetries: 5, retryAt: 8000 });
    // A real failure after busy refusals still spends an attempt.
    const real = step(first.state, { type: 'download-failed', deploymentId: 'd1', reason: 'download-failed', detail: '404', retryable: true }, 10, CFG);
    expect(real.state.job).toMatchObject({ attempts: 2, busyRetries: 1 });
  });

  it('reports rolled-back with the version now running as toVersion', () => {
    const r = step(withJob(job('reverting', { reason: 'health-check-failed' })), boot('A', 'A', 'b9'), 1, CFG);
    const report = r.effects[0];
    expect(report).toMatchObject({ type: 'report', state: 'rolled-back', fromVersion: '1.1.0', toVersion: '1.0.0', reason: 'health-check-failed' });
  });
});

describe('crash points', () => {
  // Count the effects of an uninterrupted run, then crash after each one in turn.
  const clean = run(newWorld(), { manifest });
  const total = clean.world.reports.length + 20;

  it('an uninterrupted rollout commits on slot B', () => {
    expect(clean.state.job).toMatchObject({ stage: 'done', result: 'committed' });
    expect(clean.world).toMatchObject({ primary: 'B', booted: 'B' });
  });

  for (const kind of ['process', 'power'] as const) {
    it(`a ${kind} crash between any two effects still ends committed, never unbootable`, () => {
      let crashes = 0;
      for (let k = 0; k < total; k++) {
        const r = run(newWorld(), { manifest, crashAfter: k, crashKind: kind });
        if (r.crashed) crashes++;
        const j = r.state.job!;
        expect(j.stage, `crash after effect ${k}`).toBe('done');
        // A power cut during the trial makes the one-shot trial fall back: honest rolled-back then.
        expect(['committed', 'rolled-back'], `crash after effect ${k}`).toContain(j.result);
        if (j.result === 'committed') expect(r.world.slots[r.world.booted]).toBe('1.1.0');
        else {
          expect(j.reason).toBe('trial-boot-failed');
          expect(r.world.slots[r.world.booted]).toBe('1.0.0');
          // Once the good image has come up in its trial, one power cut never rolls it back: only a
          // cut before the agent ran on the new slot (indistinguishable from a boot loop) does.
          if (kind === 'power') expect(r.world.reports.some((x) => x.state === 'trial'), `crash after effect ${k}`).toBe(false);
        }
        expect(r.world.slots[r.world.primary]).not.toBeNull();
        expect(r.state.slotVersions[r.state.booted]).toBe(r.world.slots[r.world.booted]);
        const last = r.world.reports.at(-1)!;
        expect(last.state).toBe(j.result);
      }
      expect(crashes).toBeGreaterThan(8);
    });

    it(`a ${kind} crash anywhere in a failing trial still ends rolled back on the old slot`, () => {
      for (let k = 0; k < total; k++) {
        const r = run(newWorld({ healthy: (v) => v !== '1.1.0' }), { manifest, crashAfter: k, crashKind: kind });
        const j = r.state.job!;
        expect(j.stage, `crash after effect ${k}`).toBe('done');
        expect(j.result).toBe('rolled-back');
        expect(['health-check-failed', 'trial-boot-failed']).toContain(j.reason);
        expect(r.world).toMatchObject({ primary: 'A', booted: 'A' });
        expect(r.world.slots.A).toBe('1.0.0');
      }
    });
  }

  const rollbackCommand: UpdateEvent = { type: 'command', command: command('rollback', 'd1') };
  // A release that keeps the security floor where it is (0): a rollback after its commit is allowed.
  const sameFloor = { ...manifest, securityVersion: 0 };
  const committedThenRolledBack = run(newWorld(), { manifest: sameFloor, afterSettled: [rollbackCommand] });

  it('a rollback command after the commit returns to slot A with the previous version', () => {
    expect(committedThenRolledBack.state.job).toMatchObject({ kind: 'rollback', stage: 'done', result: 'rolled-back', toVersion: '1.0.0' });
    expect(committedThenRolledBack.world).toMatchObject({ primary: 'A', booted: 'A' });
  });

  it('a rollback command after the commit of a floor-raising release is refused: the device stays and says why', () => {
    const r = run(newWorld(), { manifest, afterSettled: [rollbackCommand] });
    expect(r.state.securityFloor).toBe(2);
    expect(r.state.job).toMatchObject({ kind: 'rollback', stage: 'done', result: 'committed', reason: 'below-security-floor', toVersion: '1.1.0' });
    expect(r.world).toMatchObject({ primary: 'B', booted: 'B' });
    expect(r.world.reports.at(-1)).toMatchObject({ state: 'committed', reason: 'below-security-floor', fromVersion: '1.1.0', toVersion: '1.1.0' });
  });

  it('a failed trial of a floor-raising release falls back and leaves the floor where it was', () => {
    const r = run(newWorld({ healthy: (v) => v !== '1.1.0' }), { manifest });
    expect(r.state.job).toMatchObject({ result: 'rolled-back' });
    expect(r.state.securityFloor).toBe(0);
    expect(r.world).toMatchObject({ primary: 'A', booted: 'A' });
  });

  for (const kind of ['process', 'power'] as const) {
    it(`a ${kind} crash anywhere in a rollback ends on a committed slot with an honest report`, () => {
      const totalWithRollback = committedThenRolledBack.world.reports.length + 30;
      for (let k = 0; k < totalWithRollback; k++) {
        const r = run(newWorld(), { manifest: sameFloor, crashAfter: k, crashKind: kind, afterSettled: [rollbackCommand] });
        const j = r.state.job!;
        expect(j.stage, `crash after effect ${k}`).toBe('done');
        expect(r.world.slots[r.world.booted]).not.toBeNull();
        expect(r.world.booted, `crash after effect ${k}`).toBe(r.world.primary);
        expect(r.state.slotVersions[r.state.booted]).toBe(r.world.slots[r.world.booted]);
        expect(r.world.reports.at(-1)!.state).toBe(j.result);
        if (j.kind === 'rollback' && j.result === 'rolled-back') expect(r.world.booted).toBe('A');
        if (j.kind === 'rollback' && j.result === 'failed') {
          // The power cut spent the rollback's one-shot trial: still on 1.1.0, and it says so.
          expect(j.reason).toBe('trial-boot-failed');
          expect(r.world.slots[r.world.booted]).toBe('1.1.0');
        }
      }
    });
  }

  it('a firmware that never boots is reported as trial-boot-failed, not success', () => {
    const r = run(newWorld({ boots: (v) => v !== '1.1.0' }), { manifest });
    expect(r.state.job).toMatchObject({ stage: 'done', result: 'rolled-back', reason: 'trial-boot-failed' });
    expect(r.world.booted).toBe('A');
    // A boot loop never reaches the agent: no second trial.
    expect(r.world.arms).toBe(1);
  });

  it('a firmware that resets the device during every trial is caught after one retried trial', () => {
    const r = run(newWorld({ resetsInTrial: (v) => v === '1.1.0' }), { manifest });
    expect(r.state.job).toMatchObject({ stage: 'done', result: 'rolled-back', reason: 'trial-boot-failed', trialRetries: MAX_TRIAL_RETRIES });
    expect(r.world).toMatchObject({ primary: 'A', booted: 'A', arms: 1 + MAX_TRIAL_RETRIES });
    expect(r.world.reports.filter((x) => x.reason === 'trial-interrupted').map((x) => x.state)).toEqual(['rebooting', 'trial']);
  });

  it('an abort right after the rollout never reboots into the update', () => {
    const r = run(newWorld(), { manifest, afterRollout: [{ type: 'rollout-cleared' }] });
    expect(r.state.job).toMatchObject({ stage: 'done', result: 'failed', reason: 'aborted' });
    expect(r.world).toMatchObject({ primary: 'A', booted: 'A', trial: null });
    expect(r.world.bootSeq).toBe(1);
  });
});
