/**
 * acl.ts's rules written as Mosquitto dynamic-security roles. Pure.
 *
 * Every device gets its own client (username = client id = device id) and its own role holding
 * literal topics only: Mosquitto 2.0's plugin substitutes no `%c`/`%u` in role ACLs (checked against
 * 2.0.11: a `publishClientSend fleet/v1/devices/%c/hello` lets nobody publish), so nothing can be
 * shared between devices but the flags topic. With the default ACL access set to deny for publishing,
 * receiving and subscribing, a device may then publish exactly its own hello/status/telemetry/
 * presence and subscribe to (and receive) its commands topic, its model's rollout topic for its bucket
 * and the flags topic; a forbidden subscription is answered SUBACK 0x80 (MQTT 5: 0x87), as the
 * embedded broker answers it.
 *
 * Before the model is known (a device provisioned without one, until its first hello) the embedded
 * broker lets it read its bucket's rollout topic of any model, never a wildcard. Here that is
 * `subscribePattern fleet/v1/rollout/+/<bucket>` (which admits `…/rpi4/<bucket>` and also the filter
 * `…/+/<bucket>` itself) plus a higher-priority literal deny of `…/+/<bucket>`, which leaves the
 * literal topics only.
 *
 * Names use `:`, which no device id can contain, so a device can never be named like the coordinator.
 */
import { bucketOf } from '@fleet/protocol/bucket';
import { ALL_DEVICES_FILTER, DEVICE_PUBLISH_CHANNELS, FLAGS_TOPIC, TOPIC_ROOT, deviceTopic, rolloutTopic } from '@fleet/protocol/topics';
import { DYNSEC_RESPONSE_TOPIC, DYNSEC_TOPIC, type DynsecAcl } from './dynsec-schema.js';

/** The coordinator's broker account (both of its connections log in with it). */
export const COORDINATOR_USERNAME = 'fleet:coordinator';
/** Device traffic: read every device topic, publish manifests, commands and flags. */
export const COORDINATOR_ROLE = 'fleet:coordinator';
/** Managing the plugin: its control topic and answers, and `$SYS` for liveness. */
export const ACCOUNTS_ADMIN_ROLE = 'fleet:accounts-admin';
const DEVICE_ROLE_PREFIX = 'fleet:device:';

export function deviceRoleName(deviceId: string): string {
  return `${DEVICE_ROLE_PREFIX}${deviceId}`;
}

/** The device id of a device role's name, or undefined for any other role. */
export function deviceIdOfRole(rolename: string): string | undefined {
  return rolename.startsWith(DEVICE_ROLE_PREFIX) ? rolename.slice(DEVICE_ROLE_PREFIX.length) : undefined;
}

const allow = (acltype: DynsecAcl['acltype'], topic: string, priority = 0): DynsecAcl => ({ acltype, topic, allow: true, priority });

/** Subscribing and receiving go together: without the receive rule a granted subscription stays silent. */
const read = (topic: string): DynsecAcl[] => [allow('subscribeLiteral', topic), allow('publishClientReceive', topic)];

/** The ACLs of one device's role, for its hardware model (undefined until known). */
export function deviceAcls(deviceId: string, hardwareModel: string | undefined): DynsecAcl[] {
  const bucket = bucketOf(deviceId);
  const anyModel = `${TOPIC_ROOT}/rollout/+/${bucket}`;
  const rollout =
    hardwareModel !== undefined
      ? read(rolloutTopic(hardwareModel, bucket))
      : [allow('subscribePattern', anyModel), { acltype: 'subscribeLiteral' as const, topic: anyModel, allow: false, priority: 1 }, allow('publishClientReceive', anyModel)];
  return [
    ...DEVICE_PUBLISH_CHANNELS.map((channel) => allow('publishClientSend', deviceTopic(deviceId, channel))),
    ...read(deviceTopic(deviceId, 'commands')),
    ...read(FLAGS_TOPIC),
    ...rollout,
  ];
}

/**
 * The coordinator's device traffic. It receives only what devices publish (not its own commands back
 * through `fleet/v1/devices/+/+`), and may subscribe through a shared subscription (`$share/<group>/…`,
 * which Mosquitto 2.0 checks as written) so that several coordinators can split the stream.
 */
export function coordinatorAcls(): DynsecAcl[] {
  return [
    allow('subscribePattern', ALL_DEVICES_FILTER),
    allow('subscribePattern', `$share/+/${ALL_DEVICES_FILTER}`),
    ...DEVICE_PUBLISH_CHANNELS.map((channel) => allow('publishClientReceive', `${TOPIC_ROOT}/devices/+/${channel}`)),
    allow('publishClientSend', `${TOPIC_ROOT}/rollout/#`),
    allow('publishClientSend', `${TOPIC_ROOT}/devices/+/commands`),
    allow('publishClientSend', FLAGS_TOPIC),
  ];
}

/** Managing accounts over the plugin's control topic, and reading `$SYS` (broker uptime, client counts). */
export function accountsAdminAcls(): DynsecAcl[] {
  return [
    allow('publishClientSend', DYNSEC_TOPIC),
    ...read(DYNSEC_RESPONSE_TOPIC),
    allow('subscribePattern', '$SYS/#'),
    allow('publishClientReceive', '$SYS/#'),
  ];
}

/** Deny by default: whatever no role allows, nobody may do (unsubscribing stays allowed, as on the embedded broker). */
export const DEFAULT_ACL_ACCESS = [
  { acltype: 'publishClientSend', allow: false },
  { acltype: 'publishClientReceive', allow: false },
  { acltype: 'subscribe', allow: false },
  { acltype: 'unsubscribe', allow: true },
] as const;
