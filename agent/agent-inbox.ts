/**
 * Classifies what arrives on the device's three subscriptions, parsing every payload at the edge.
 * Pure: a bad payload becomes a `bad` result (counted and logged by the shell), never a throw.
 */
import {
  CommandMessageSchema,
  FlagsMessageSchema,
  RolloutTopicMessageSchema,
  type CommandMessage,
  type FlagsMessage,
  type RolloutCancelMessage,
  type RolloutMessage,
} from '@fleet/protocol/messages';
import { parsePayload } from '@fleet/protocol/parse';
import { FLAGS_TOPIC } from '@fleet/protocol/topics';

export type Inbound =
  /** Empty retained payload on the wave topic: the coordinator cleared the wave (abort). */
  | { kind: 'cleared' }
  | { kind: 'rollout'; message: RolloutMessage }
  /** Retained cancel on the wave topic: that deployment was aborted (only its own job stops). */
  | { kind: 'cancel'; message: RolloutCancelMessage }
  | { kind: 'command'; message: CommandMessage }
  | { kind: 'flags'; message: FlagsMessage }
  | { kind: 'bad'; error: string }
  | { kind: 'ignored' };

export interface InboxTopics {
  rollout: string;
  commands: string;
}

export function classifyInbound(topic: string, payload: Uint8Array, topics: InboxTopics): Inbound {
  if (topic === topics.rollout) {
    if (payload.length === 0) return { kind: 'cleared' };
    const parsed = parsePayload(RolloutTopicMessageSchema, payload, 'rollout message');
    if (!parsed.ok) return { kind: 'bad', error: parsed.error.message };
    const m = parsed.value;
    return m.kind === 'rollout' ? { kind: 'rollout', message: m } : { kind: 'cancel', message: m };
  }
  if (topic === topics.commands) {
    const parsed = parsePayload(CommandMessageSchema, payload, 'command message');
    return parsed.ok ? { kind: 'command', message: parsed.value } : { kind: 'bad', error: parsed.error.message };
  }
  if (topic === FLAGS_TOPIC) {
    if (payload.length === 0) return { kind: 'ignored' };
    const parsed = parsePayload(FlagsMessageSchema, payload, 'flags message');
    return parsed.ok ? { kind: 'flags', message: parsed.value } : { kind: 'bad', error: parsed.error.message };
  }
  return { kind: 'ignored' };
}
