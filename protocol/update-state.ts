/**
 * The agent's update states as they cross the wire (the agent's state machine owns the transitions).
 * Pure.
 *
 *   idle → downloading → verifying → installing → rebooting → trial → committed
 *   any → rejected (refused before download) | failed (gave up, old slot untouched and running)
 *   trial/committed → rolling-back → rolled-back (back on the previous slot and version)
 */
import { z } from 'zod';

export const UpdateStateSchema = z.enum([
  'idle',
  'rejected',
  'downloading',
  'verifying',
  'installing',
  'rebooting',
  'trial',
  'committed',
  'rolling-back',
  'rolled-back',
  'failed',
  'already-installed',
]);
export type UpdateState = z.infer<typeof UpdateStateSchema>;

/** States after which the device does no more work for this deployment. */
export const TERMINAL_UPDATE_STATES: readonly UpdateState[] = [
  'rejected',
  'committed',
  'rolled-back',
  'failed',
  'already-installed',
];

export function isTerminalUpdateState(state: UpdateState): boolean {
  return TERMINAL_UPDATE_STATES.includes(state);
}

export const SlotNameSchema = z.enum(['A', 'B']);
export type SlotName = z.infer<typeof SlotNameSchema>;

export function otherSlot(slot: SlotName): SlotName {
  return slot === 'A' ? 'B' : 'A';
}
