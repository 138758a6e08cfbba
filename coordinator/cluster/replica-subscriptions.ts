/**
 * What a coordinator replica subscribes to on an external broker (docs/replication.md, "Ingest").
 * Telemetry — the volume — goes through a shared subscription (`$share/<group>/…`): the broker hands
 * each message to one replica, so another replica adds ingest capacity. Hellos, statuses and presence
 * — a few per device per rollout, and the engine must see every one — go to every replica: Mosquitto
 * keeps routing a shared subscription's messages to a member that is down, queued in its persistent
 * session until it comes back, which would hold back a dead leader's share of acknowledged statuses
 * for as long as it stays dead. Every replica stores them in the inbox instead; the engine ignores
 * the copies by sequence. Pure.
 */
import { ALL_DEVICES_FILTER, TOPIC_ROOT, type DeviceChannel } from '@fleet/protocol/topics';

/** Channels every replica receives (the rest of the device channels are shared). */
export const EVERY_REPLICA_CHANNELS: readonly DeviceChannel[] = ['hello', 'status', 'presence'];

/** The subscription filters of one replica: all device topics alone, or shared telemetry plus control. */
export function replicaSubscriptions(shareGroup: string | undefined): string[] {
  if (shareGroup === undefined) return [ALL_DEVICES_FILTER];
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(shareGroup)) throw new Error(`share group ${JSON.stringify(shareGroup)} must be 1–64 letters, digits, _ or -`);
  return [`$share/${shareGroup}/${TOPIC_ROOT}/devices/+/telemetry`, ...EVERY_REPLICA_CHANNELS.map((c) => `${TOPIC_ROOT}/devices/+/${c}`)];
}
