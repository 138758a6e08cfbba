/**
 * The edge for everything devices publish: topic → channel, payload parsed with the protocol/ schema
 * for that channel, the device id in the payload checked against the topic's, then handed to the
 * handlers. Telemetry, the high-volume channel, is handed on unparsed: the telemetry thread parses it
 * with the same schema and reports the bad ones to the same account (bad-messages.ts). A bad message
 * is counted, logged (rate-limited) and dropped; it never throws into the broker.
 *
 * Each device has its own token buckets, one for telemetry and a looser one for hello, status and
 * presence together, taken before anything is parsed: a device flooding past its rate has its own
 * messages shed (counted as `ingest.shed.<channel>` and reported per device through `onShed`), so the
 * shared telemetry queue stays free for everyone else's. I/O shell (logging only).
 */
import type { Logger } from 'pino';
import { parsePayload } from '@fleet/protocol/parse';
import { parseTopic } from '@fleet/protocol/topics';
import {
  HelloMessageSchema,
  PresenceMessageSchema,
  StatusMessageSchema,
  type HelloMessage,
  type PresenceMessage,
  type StatusMessage,
} from '@fleet/protocol/messages';
import type { Counters } from '../metrics.js';
import type { InboundMessage } from '../broker/transport.js';
import { TokenBuckets, type RateLimit } from './token-buckets.js';
import type { BadMessages } from './bad-messages.js';

export interface IngestHandlers {
  hello(msg: HelloMessage): void;
  /** Resolves once the status is durably recorded; the device's PUBACK waits for it. */
  status(msg: StatusMessage): Promise<void> | void;
  /** Raw telemetry from `deviceId`'s own topic (the transport checked the publisher); parsed downstream. */
  telemetry(deviceId: string, payload: Buffer): void;
  presence(msg: PresenceMessage): void;
}

const SCHEMAS = {
  hello: HelloMessageSchema,
  status: StatusMessageSchema,
  presence: PresenceMessageSchema,
} as const;

export interface IngestLimits {
  telemetry: RateLimit;
  /** Hello, status and presence together. */
  control: RateLimit;
  /** Time for the buckets (the coordinator's clock). */
  now: () => number;
  /** A message of `deviceId` on `channel` was shed (past its rate). */
  onShed?: (deviceId: string, channel: 'telemetry' | 'control') => void;
}

export interface DeviceIngestOptions {
  handlers: IngestHandlers;
  counters: Counters;
  logger: Logger;
  /** Where bad messages are counted and logged (the telemetry thread reports its own there too). */
  bad: BadMessages;
  /** Per-device rates; without them nothing is shed. */
  limits?: IngestLimits;
}

export class DeviceIngest {
  private readonly handlers: IngestHandlers;
  private readonly counters: Counters;
  private readonly logger: Logger;
  private readonly badMessages: BadMessages;
  private readonly limits: IngestLimits | undefined;
  private readonly telemetryBuckets: TokenBuckets | undefined;
  private readonly controlBuckets: TokenBuckets | undefined;

  constructor(o: DeviceIngestOptions) {
    this.handlers = o.handlers;
    this.counters = o.counters;
    this.logger = o.logger;
    this.badMessages = o.bad;
    this.limits = o.limits;
    this.telemetryBuckets = o.limits ? new TokenBuckets(o.limits.telemetry, o.limits.now) : undefined;
    this.controlBuckets = o.limits ? new TokenBuckets(o.limits.control, o.limits.now) : undefined;
  }

  readonly handle = (m: InboundMessage): void => {
    const topic = parseTopic(m.topic);
    if (!topic || topic.kind !== 'device' || topic.channel === 'commands') {
      // The coordinator's own command publishes echo here on an external broker; ignore quietly.
      if (!(topic?.kind === 'device' && topic.channel === 'commands')) this.bad('topic', m.topic, undefined, 'not a device topic');
      m.ack();
      return;
    }
    const { deviceId, channel } = topic;
    if (m.clientDeviceId !== undefined && m.clientDeviceId !== deviceId) {
      this.bad(channel, m.topic, deviceId, `published by ${m.clientDeviceId}`);
      m.ack();
      return;
    }
    if (!this.admit(deviceId, channel)) {
      m.ack();
      return;
    }
    if (m.payload.length === 0) {
      m.ack();
      return;
    }
    if (channel === 'telemetry') {
      this.guard(deviceId, channel, () => this.handlers.telemetry(deviceId, m.payload));
      m.ack();
      return;
    }
    const parsed = parsePayload(SCHEMAS[channel], m.payload, `${channel} message`);
    if (!parsed.ok) {
      this.bad(channel, m.topic, deviceId, parsed.error.message);
      m.ack();
      return;
    }
    const msg = parsed.value;
    if (msg.deviceId !== deviceId) {
      this.bad(channel, m.topic, deviceId, `payload deviceId ${msg.deviceId} differs from the topic's`);
      m.ack();
      return;
    }
    this.counters.inc(`ingest.${channel}`);
    if (msg.kind === 'status') {
      let done: Promise<void> | void;
      try {
        done = this.handlers.status(msg);
      } catch (err) {
        // Not stored (the inbox write is the handler's first step): no PUBACK, so the device sends it
        // again, exactly as when the handler's promise rejects.
        this.handlerFailed(err, deviceId, channel);
        return m.ack(err instanceof Error ? err : new Error(String(err)));
      }
      if (!done) return m.ack();
      done.then(
        () => m.ack(),
        (err: unknown) => {
          this.counters.inc('ingest.handler.errors');
          this.logger.error({ err, deviceId, channel }, 'status handler failed');
          m.ack(err instanceof Error ? err : new Error(String(err)));
        },
      );
      return;
    }
    this.guard(deviceId, channel, () => (msg.kind === 'hello' ? this.handlers.hello(msg) : this.handlers.presence(msg)));
    m.ack();
  };

  /** Takes a token from the device's bucket for this channel; false (counted, reported) when it is empty. */
  private admit(deviceId: string, channel: 'hello' | 'status' | 'telemetry' | 'presence'): boolean {
    const kind = channel === 'telemetry' ? 'telemetry' : 'control';
    const buckets = kind === 'telemetry' ? this.telemetryBuckets : this.controlBuckets;
    if (!buckets || buckets.take(deviceId)) return true;
    this.counters.inc(`ingest.shed.${kind}`);
    this.limits?.onShed?.(deviceId, kind);
    return false;
  }

  /** Runs a handler; a handler bug is counted and logged, never thrown into the broker. */
  private guard(deviceId: string, channel: string, run: () => void): void {
    try {
      run();
    } catch (err) {
      this.handlerFailed(err, deviceId, channel);
    }
  }

  private handlerFailed(err: unknown, deviceId: string, channel: string): void {
    this.counters.inc('ingest.handler.errors');
    this.logger.error({ err, deviceId, channel }, 'device message handler failed');
  }

  private bad(channel: string, topic: string, deviceId: string | undefined, reason: string): void {
    this.badMessages.record(channel, topic, deviceId, reason);
  }
}
