/**
 * Who may publish and subscribe to what. Pure; follows protocol/topics.ts exactly:
 * a device publishes only its own `hello|status|telemetry|presence` and subscribes only to its
 * rollout topic (its hardware model, its bucket), its own command topic and the flags topic. No
 * wildcards, no `$SYS`, nothing else. A device that connected without credentials (a ghost, allowed
 * only in development) never reads a rollout topic: it is in no wave, so nothing would track an
 * install.
 */
import { bucketOf } from '@fleet/protocol/bucket';
import { DEVICE_PUBLISH_CHANNELS, FLAGS_TOPIC, deviceTopic, parseTopic, rolloutTopic } from '@fleet/protocol/topics';

export interface DeviceIdentity {
  deviceId: string;
  /** Known hardware model (provisioning or hello); undefined before the first hello. */
  hardwareModel: string | undefined;
  /** Connected without credentials (a ghost). */
  anonymous?: boolean;
}

export type AclDecision = { ok: true } | { ok: false; reason: string };

/** Publishing depends on the device id alone (the hardware model matters only for subscriptions). */
export function authorizeDevicePublish(identity: Pick<DeviceIdentity, 'deviceId'>, topic: string): AclDecision {
  const parsed = parseTopic(topic);
  if (!parsed || parsed.kind !== 'device') return { ok: false, reason: 'not a device topic' };
  if (parsed.deviceId !== identity.deviceId) return { ok: false, reason: `topic belongs to device ${parsed.deviceId}` };
  if (!DEVICE_PUBLISH_CHANNELS.includes(parsed.channel)) return { ok: false, reason: `devices may not publish on ${parsed.channel}` };
  return { ok: true };
}

export function authorizeDeviceSubscribe(identity: DeviceIdentity, filter: string): AclDecision {
  if (filter.includes('#') || filter.includes('+')) return { ok: false, reason: 'wildcards are not allowed' };
  if (filter === FLAGS_TOPIC) return { ok: true };
  if (filter === deviceTopic(identity.deviceId, 'commands')) return { ok: true };
  const parsed = parseTopic(filter);
  if (parsed?.kind === 'rollout') {
    if (identity.anonymous) return { ok: false, reason: 'a device without credentials receives no rollouts; provision it' };
    if (parsed.bucket !== bucketOf(identity.deviceId)) return { ok: false, reason: `bucket ${parsed.bucket} is not this device's` };
    // Before the first hello the model is unknown; the bucket check still confines the device to its
    // own rollout topic per model (manifests are signed and not secret).
    if (identity.hardwareModel !== undefined && filter !== rolloutTopic(identity.hardwareModel, parsed.bucket)) {
      return { ok: false, reason: `hardware model ${parsed.hardwareModel} is not this device's (${identity.hardwareModel})` };
    }
    return { ok: true };
  }
  return { ok: false, reason: 'not a topic this device may read' };
}
