/**
 * The one account of bad device messages: a topic that is not a device's, a payload that does not
 * parse, a device id that differs from the topic's. The broker edge (device-ingest.ts) reports what it
 * refuses itself; the telemetry thread, which parses telemetry off the broker's thread, reports what it
 * could not parse. Each is counted as `ingest.bad.<channel>` and `ingest.bad`, and logged with its
 * sender — the first 100 in full, then one in every 1,000, so a broken fleet cannot flood the log.
 * I/O shell (counters and logging only).
 */
import type { Logger } from 'pino';
import { deviceTopic } from '@fleet/protocol/topics';
import type { Counters } from '../metrics.js';

/** Logged in full before the log thins out to one line in every LOG_EVERY. */
const LOG_FIRST = 100;
const LOG_EVERY = 1000;

/** A bad message described: its sender and why it was dropped. */
export interface BadMessage {
  deviceId: string;
  reason: string;
}

export class BadMessages {
  private seen = 0;

  constructor(
    private readonly counters: Counters,
    private readonly logger: Logger,
  ) {}

  /** One bad message on `channel` (`topic` for one that is not a device topic at all). */
  record(channel: string, topic: string, deviceId: string | undefined, reason: string): void {
    this.counters.inc(`ingest.bad.${channel}`);
    this.counters.inc('ingest.bad');
    const n = this.seen++;
    if (n < LOG_FIRST || n % LOG_EVERY === 0) this.logger.warn({ deviceId, topic, reason, dropped: n + 1 }, 'bad device message dropped');
  }

  /**
   * Telemetry the telemetry thread could not parse: `described` with sender and reason (a bounded
   * number per batch), `count` in all; the undescribed rest is counted without a log line.
   */
  telemetry(described: readonly BadMessage[], count: number): void {
    for (const b of described) this.record('telemetry', deviceTopic(b.deviceId, 'telemetry'), b.deviceId, b.reason);
    const undescribed = count - described.length;
    if (undescribed <= 0) return;
    this.counters.inc('ingest.bad.telemetry', undescribed);
    this.counters.inc('ingest.bad', undescribed);
    this.seen += undescribed;
  }
}
