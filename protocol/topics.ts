/**
 * The MQTT topic scheme, built and parsed only here. Pure.
 *
 * device → coordinator (each device publishes only below its own `fleet/v1/devices/{id}/`):
 *   fleet/v1/devices/{id}/hello       birth message on every connect (QoS 1)
 *   fleet/v1/devices/{id}/status      update state transitions (QoS 1)
 *   fleet/v1/devices/{id}/telemetry   periodic metrics (QoS 0)
 *   fleet/v1/devices/{id}/presence    last will: offline (QoS 1)
 * coordinator → devices:
 *   fleet/v1/devices/{id}/commands    signed commands to one device (QoS 1)
 *   fleet/v1/rollout/{model}/{bucket} signed manifest for a wave, or a rollout-cancel once the deployment stops, retained (QoS 1)
 *   fleet/v1/flags                    fleet-wide feature flag snapshot, retained (QoS 1)
 */
import { BUCKET_COUNT } from './bucket.js';
import { isValidId } from './ids.js';
import { FleetError } from './errors.js';

export const TOPIC_ROOT = 'fleet/v1';

export const DEVICE_CHANNELS = ['hello', 'status', 'telemetry', 'presence', 'commands'] as const;
export type DeviceChannel = (typeof DEVICE_CHANNELS)[number];

/** Channels a device publishes on; `commands` is the coordinator's. */
export const DEVICE_PUBLISH_CHANNELS: readonly DeviceChannel[] = ['hello', 'status', 'telemetry', 'presence'];

export class InvalidTopicError extends FleetError {
  constructor(message: string) {
    super('invalid-topic', message);
  }
}

function requireId(kind: string, value: string): string {
  if (!isValidId(value)) throw new InvalidTopicError(`${kind} ${JSON.stringify(value)} cannot be used in a topic`);
  return value;
}

function requireBucket(bucket: number): number {
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= BUCKET_COUNT) {
    throw new InvalidTopicError(`bucket ${bucket} is outside 0..${BUCKET_COUNT - 1}`);
  }
  return bucket;
}

export function deviceTopic(deviceId: string, channel: DeviceChannel): string {
  return `${TOPIC_ROOT}/devices/${requireId('device id', deviceId)}/${channel}`;
}

export function rolloutTopic(hardwareModel: string, bucket: number): string {
  return `${TOPIC_ROOT}/rollout/${requireId('hardware model', hardwareModel)}/${requireBucket(bucket)}`;
}

export const FLAGS_TOPIC = `${TOPIC_ROOT}/flags`;

/** Subscription the coordinator uses for everything devices publish. */
export const ALL_DEVICES_FILTER = `${TOPIC_ROOT}/devices/+/+`;

export type ParsedTopic =
  | { kind: 'device'; deviceId: string; channel: DeviceChannel }
  | { kind: 'rollout'; hardwareModel: string; bucket: number }
  | { kind: 'flags' };

/**
 * Parsed topics by topic string. A fleet publishes on a few topics per device, over and over, and the
 * broker's ACL and the coordinator's ingest both parse each message's topic: remembering them saves
 * the split and the id check per message. Bounded: emptied when it reaches MAX_PARSED_TOPICS.
 */
const parsedTopics = new Map<string, Readonly<ParsedTopic> | null>();
const MAX_PARSED_TOPICS = 250_000;

/** Parses a concrete topic (no wildcards); returns null for anything outside the scheme. The result is frozen (shared). */
export function parseTopic(topic: string): Readonly<ParsedTopic> | null {
  const known = parsedTopics.get(topic);
  if (known !== undefined) return known;
  const parsed = parseTopicUncached(topic);
  if (parsedTopics.size >= MAX_PARSED_TOPICS) parsedTopics.clear();
  parsedTopics.set(topic, parsed && Object.freeze(parsed));
  return parsed;
}

function parseTopicUncached(topic: string): ParsedTopic | null {
  const parts = topic.split('/');
  if (parts[0] !== 'fleet' || parts[1] !== 'v1') return null;
  if (parts.length === 3 && parts[2] === 'flags') return { kind: 'flags' };
  if (parts.length === 5 && parts[2] === 'devices') {
    const deviceId = parts[3]!;
    const channel = parts[4]! as DeviceChannel;
    if (!isValidId(deviceId) || !DEVICE_CHANNELS.includes(channel)) return null;
    return { kind: 'device', deviceId, channel };
  }
  if (parts.length === 5 && parts[2] === 'rollout') {
    const hardwareModel = parts[3]!;
    const raw = parts[4]!;
    if (!isValidId(hardwareModel) || !/^(0|[1-9]\d{0,3})$/.test(raw)) return null;
    const bucket = Number(raw);
    if (bucket >= BUCKET_COUNT) return null;
    return { kind: 'rollout', hardwareModel, bucket };
  }
  return null;
}

/** The exact topics a device may subscribe to: its wave topic, its command topic and the flags. */
export function deviceSubscriptions(deviceId: string, hardwareModel: string, bucket: number): string[] {
  return [rolloutTopic(hardwareModel, bucket), deviceTopic(deviceId, 'commands'), FLAGS_TOPIC];
}
