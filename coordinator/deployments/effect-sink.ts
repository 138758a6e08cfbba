/**
 * Carries out the rollout engine's outward effects: retained manifests on bucket topics, clearing
 * them, signed commands to devices, audit entries. Each call is idempotent (same topics, same command
 * id), so the runner may retry after a crash. I/O shell.
 */
import type { Logger } from 'pino';
import { encodeMessage, parsePayload } from '@fleet/protocol/parse';
import { PROTOCOL_VERSION, type Envelope } from '@fleet/protocol/signed';
import { RolloutTopicMessageSchema, type RolloutCancelMessage, type RolloutMessage } from '@fleet/protocol/messages';
import { deviceTopic, rolloutTopic } from '@fleet/protocol/topics';
import { DEFAULT_COMMAND_TTL_MS, buildCommand, signCommand } from '@fleet/firmware/manifest';
import type { SigningKey } from '@fleet/firmware/keys';
import type { AuditEntry, CommandRequest, EffectSink } from '../engine/types.js';
import type { AuditLog } from '../store/audit-log.js';
import type { Counters } from '../metrics.js';
import type { Publisher } from '../broker/publisher.js';
import type { AnomalyLog } from '../registry/anomaly-log.js';
import type { DecisionRecord } from '../gate/decision.js';

export interface CoordinatorEffectSinkOptions {
  publisher: Publisher;
  key: SigningKey;
  auditLog: AuditLog;
  logger: Logger;
  counters: Counters;
  now: () => number;
  /**
   * The next command seq (replay protection; FreshnessCounters in the coordinator). Each send signs
   * a fresh command with a new seq, so a command re-sent on reconnect is never taken for a replay.
   */
  commandSeq: () => Promise<number>;
  /** Lifetime of a signed command. Default DEFAULT_COMMAND_TTL_MS (24 hours): every re-send is fresh. */
  commandTtlMs?: number;
  /** Called after each audit entry (the coordinator's event stream). */
  onAudit?: (entry: AuditEntry) => void;
  /** Called after each recorded decision (metrics, webhooks, the event stream). */
  onDecision?: (decision: DecisionRecord) => void;
  /** Device anomalies the engine reports (statuses for updates never offered). */
  anomalies?: Pick<AnomalyLog, 'record'>;
}

export class CoordinatorEffectSink implements EffectSink {
  constructor(private readonly o: CoordinatorEffectSinkOptions) {}

  async publishRollout(hardwareModel: string, buckets: readonly number[], message: RolloutMessage): Promise<void> {
    const payload = encodeMessage(message);
    await this.o.publisher.retainMany(buckets.map((b) => ({ topic: rolloutTopic(hardwareModel, b), payload })));
    this.o.counters.inc('rollout.topics.published', buckets.length);
  }

  /**
   * Stops a deployment's waves. With `deploymentId`, publishes a retained rollout-cancel in place of
   * the manifest, so a device offline right now still aborts when it reconnects; a topic that already
   * carries a later deployment's message is left alone. Without it, clears the topics (empty payload).
   */
  async clearRollout(hardwareModel: string, buckets: readonly number[], deploymentId?: string): Promise<void> {
    if (deploymentId === undefined) {
      await this.o.publisher.clearMany(buckets.map((b) => rolloutTopic(hardwareModel, b)));
      this.o.counters.inc('rollout.topics.cleared', buckets.length);
      return;
    }
    const cancel: RolloutCancelMessage = { v: PROTOCOL_VERSION, kind: 'rollout-cancel', deploymentId, at: this.o.now() };
    const payload = encodeMessage(cancel);
    const topics = buckets.map((b) => rolloutTopic(hardwareModel, b));
    const recorded = await this.o.publisher.retainedMany(topics);
    const mine = topics.filter((topic) => {
      const owner = ownerOf(recorded.get(topic));
      return owner === undefined || owner === deploymentId;
    });
    await this.o.publisher.retainMany(mine.map((topic) => ({ topic, payload })));
    const published = mine.length;
    this.o.counters.inc('rollout.topics.cancelled', published);
    if (published < buckets.length) {
      this.o.logger.info({ deploymentId, hardwareModel, skipped: buckets.length - published }, 'cancel left out on topics a later deployment owns');
    }
  }

  async sendCommand(command: CommandRequest): Promise<void> {
    const signed = signCommand(
      buildCommand({
        commandId: command.commandId,
        deviceId: command.deviceId,
        action: command.action,
        deploymentId: command.deploymentId,
        issuedAt: this.o.now(),
        ttlMs: this.o.commandTtlMs ?? DEFAULT_COMMAND_TTL_MS,
        seq: await this.o.commandSeq(),
      }),
      [this.o.key],
    );
    const message = { v: PROTOCOL_VERSION, kind: 'command' as const, command: signed as unknown as Envelope };
    await this.o.publisher.send(deviceTopic(command.deviceId, 'commands'), encodeMessage(message), 1);
    this.o.counters.inc(`commands.${command.action}`);
    this.o.logger.info({ deviceId: command.deviceId, deploymentId: command.deploymentId, commandId: command.commandId, action: command.action, seq: signed.signed.seq }, 'command sent');
  }

  decision(record: DecisionRecord): void {
    this.o.onDecision?.(record);
  }

  anomaly(deviceId: string, kind: 'unoffered-status', detail: string): void {
    this.o.anomalies?.record(deviceId, kind, detail);
  }

  audit(entry: AuditEntry): void {
    const { at, actor, action, deploymentId, wave, deviceId, detail } = entry;
    this.o.auditLog.appendLater(at, actor, action, deploymentId, { ...detail, ...(wave !== undefined ? { wave } : {}), ...(deviceId !== undefined ? { deviceId } : {}) });
    this.o.logger.info({ deploymentId, wave, deviceId, actor, action, ...detail }, action);
    this.o.onAudit?.(entry);
  }
}

/** The deployment whose manifest or cancel a retained rollout payload carries, if any. */
function ownerOf(retained: Buffer | undefined): string | undefined {
  if (!retained || retained.length === 0) return undefined;
  const parsed = parsePayload(RolloutTopicMessageSchema, retained, 'retained rollout message');
  return parsed.ok ? parsed.value.deploymentId : undefined;
}
