/** Shared builders for the engine, runner and repository tests. */
import { bucketOf } from '../../protocol/bucket.js';
import type { HelloMessage, StatusMessage } from '../../protocol/messages.js';
import type { UpdateReason } from '../../protocol/reasons.js';
import type { UpdateState } from '../../protocol/update-state.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { generateSigningKey } from '../../firmware/keys.js';
import { buildDeploymentSpec, defaultWaves } from '../../coordinator/engine/deployment-spec.js';
import { DeploymentRequestSchema, type DeploymentRequestInput, type DeploymentSpec, type EngineEffect, type WaveMember } from '../../coordinator/engine/types.js';
import { waveOfBucketIn } from '../../coordinator/engine/wave-plan.js';

const key = generateSigningKey();
export const T0 = Date.UTC(2026, 0, 5, 12, 0, 0); // a Monday, noon UTC
export const MIN = 60_000;
export const HOUR = 60 * MIN;

export function makeSpec(overrides: Partial<DeploymentRequestInput> = {}, id = 'dep-1'): DeploymentSpec {
  const request = DeploymentRequestSchema.parse({
    firmwareVersion: '2.0.0',
    target: { hardwareModels: ['m1'], versionRange: '>=1.0.0 <2.0.0' },
    waves: defaultWaves([10, 50, 100], 30 * MIN, { minDevicesReporting: 1, deadlineMs: HOUR }),
    ...overrides,
  });
  const artifact = { url: 'http://127.0.0.1:1/fw.bin', size: 1024, sha256: 'a'.repeat(64) };
  const manifest = signManifest(
    buildManifest({ firmwareVersion: '2.0.0', hardware: ['m1'], artifact, deploymentId: id, installableOver: '>=1.0.0 <2.0.0', issuedAt: T0 }),
    [key],
  );
  return buildDeploymentSpec(request, { id, bucketOffset: 17, manifest, artifact, createdAt: T0 });
}

/** `n` device ids whose buckets fall in `wave` of `spec`. */
export function devicesInWave(spec: DeploymentSpec, wave: number, n: number, prefix = 'd'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n && i < 100_000; i++) {
    const id = `${prefix}-${i}`;
    if (waveOfBucketIn(spec, bucketOf(id)) === wave) out.push(id);
  }
  return out;
}

export function members(ids: readonly string[], online = true, version = '1.0.0'): WaveMember[] {
  return ids.map((deviceId) => ({ deviceId, bucket: bucketOf(deviceId), hardwareModel: 'm1', firmwareVersion: version, online }));
}

const seqs = new Map<string, number>();
export function status(deviceId: string, state: UpdateState, opts: { reason?: UpdateReason; at?: number; seq?: number; deploymentId?: string } = {}): StatusMessage {
  const seq = opts.seq ?? (seqs.get(deviceId) ?? 0) + 1;
  seqs.set(deviceId, seq);
  return {
    v: 1,
    kind: 'status',
    deviceId,
    deploymentId: opts.deploymentId ?? 'dep-1',
    state,
    // As the agent reports it: a rollback goes "to" the old version it now runs, "from" the abandoned one.
    fromVersion: state === 'rolled-back' ? '2.0.0' : '1.0.0',
    toVersion: state === 'rolled-back' ? '1.0.0' : '2.0.0',
    ...(opts.reason ? { reason: opts.reason } : {}),
    seq,
    at: opts.at ?? T0,
  };
}

export function hello(deviceId: string, firmwareVersion: string, update?: HelloMessage['update']): HelloMessage {
  return {
    v: 1,
    kind: 'hello',
    deviceId,
    hardwareModel: 'm1',
    firmwareVersion,
    activeSlot: 'A',
    agentVersion: '1.0.0',
    bucket: bucketOf(deviceId),
    tags: [],
    securityFloor: 0,
    ...(update ? { update } : {}),
    at: T0,
  };
}

export function ofType<K extends EngineEffect['type']>(effects: readonly EngineEffect[], type: K): Extract<EngineEffect, { type: K }>[] {
  return effects.filter((e): e is Extract<EngineEffect, { type: K }> => e.type === type);
}
