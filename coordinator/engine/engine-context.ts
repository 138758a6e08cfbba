/**
 * The working context of one engine step: the draft state, the time, the effects collected so far, and
 * small helpers shared by the transition modules. Pure.
 */
import { createHash } from 'node:crypto';
import type { Draft } from './device-progress.js';
import type { Envelope } from '@fleet/protocol/signed';
import type { AuditEntry, DeploymentCore, EngineEffect, WaveSpec, WaveState } from './types.js';

export interface Ctx {
  readonly d: Draft;
  readonly now: number;
  readonly effects: EngineEffect[];
  rejected?: { code: string; message: string };
}

export function audit(ctx: Ctx, actor: string, action: string, detail: Record<string, unknown> = {}, extra: Partial<Pick<AuditEntry, 'wave' | 'deviceId'>> = {}): void {
  ctx.effects.push({
    type: 'audit',
    entry: { at: ctx.now, actor, action, deploymentId: ctx.d.core.spec.id, ...extra, detail },
  });
}

/** A device reported on an update it was never offered: recorded on the device, never counted. */
export function unofferedStatus(ctx: Ctx, deviceId: string, detail: string): void {
  ctx.effects.push({ type: 'device-anomaly', deviceId, kind: 'unoffered-status', detail });
}

/** The manifest the deployment publishes now: the latest renewal (manifest-renewal.ts), else the one signed at creation. */
export function currentManifest(core: DeploymentCore): Envelope {
  return core.manifest ?? core.spec.manifest;
}

export function reject(ctx: Ctx, code: string, message: string): void {
  ctx.rejected = { code, message };
}

export function waveSpec(ctx: Ctx, index: number): WaveSpec {
  return ctx.d.core.spec.waves[index]!;
}

export function currentWave(ctx: Ctx): WaveState {
  return ctx.d.core.waves[ctx.d.core.current]!;
}

/** A command id that is the same for the same (deployment, device, attempt): re-sends are idempotent. */
export function rollbackCommandId(deploymentId: string, deviceId: string, attempt: number): string {
  const h = createHash('sha256').update(`${deploymentId}/${deviceId}`, 'utf8').digest('hex').slice(0, 24);
  return `rb-${h}-${attempt}`;
}

/** A decision id made by the engine itself (early abort, Monitor limit, operator override). */
export function engineDecisionId(ctx: Ctx, wave: number, source: string): string {
  return `${ctx.d.core.spec.id}.w${wave}.${source}.r${ctx.d.core.revision + 1}`;
}
