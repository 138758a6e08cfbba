/**
 * The durable record: what must never go backwards on a device — the security floor, the newest
 * manifest accepted (metadataVersion), the status sequence, the newest command executed — plus what
 * each slot holds. It is kept outside state.json, twice: a second file in the data directory and the
 * slot backend's boot environment (a U-Boot variable, a file on the boot partition), so an agent whose
 * state file was lost or moved aside rebuilds the truth instead of starting from the config's factory
 * values (docs/freshness.md). A zod schema (it is a file format) and pure functions.
 */
import { z } from 'zod';
import { DeploymentIdSchema, SemverSchema } from '@fleet/protocol/ids';
import { parseValue } from '@fleet/protocol/parse';
import type { SlotName } from '@fleet/protocol/update-state';
import { HANDLED_LIMIT, initialAgentState, remember, type AgentState } from './agent-state.js';
import { errorMessage } from '@fleet/protocol/errors';
import { definedProps } from '@fleet/firmware/defined-props';

export const DURABLE_RECORD_VERSION = 1;
/**
 * Finished deployments kept in the record: enough to ignore the retained manifest of the last ones,
 * small enough that the record fits a U-Boot variable (DURABLE_MAX_BYTES) with 64-character ids.
 */
export const DURABLE_HANDLED_LIMIT = 2;
/**
 * Status seqs reserved per write of the record: the record is written a few times per update (flash
 * wear on a boot environment), not at every status, and a rebuilt agent starts at the reserved bound,
 * above any seq it sent.
 */
export const STATUS_SEQ_BLOCK = 1000;

const CounterSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const DurableSlotSchema = z.object({
  version: SemverSchema,
  securityVersion: z.number().int().min(0).optional(),
  deploymentId: DeploymentIdSchema.optional(),
});

export const DurableRecordSchema = z.object({
  v: z.literal(DURABLE_RECORD_VERSION),
  /** Raised at every write: of two copies, the newer one says what the slots hold. */
  gen: CounterSchema,
  securityFloor: CounterSchema,
  manifestVersion: CounterSchema,
  manifestDeployment: DeploymentIdSchema.optional(),
  /** Every status seq the device used is below this. */
  seqReserved: CounterSchema,
  commandSeq: CounterSchema,
  /** Recently finished deployments, newest last. */
  handled: z.array(DeploymentIdSchema).max(DURABLE_HANDLED_LIMIT),
  slots: z.object({ A: DurableSlotSchema.optional(), B: DurableSlotSchema.optional() }),
});
export type DurableRecord = z.infer<typeof DurableRecordSchema>;

/** The durable part of a state (generation 0; the writer sets it). */
export function durableOf(state: AgentState, gen = 0): DurableRecord {
  const slots: DurableRecord['slots'] = {};
  for (const slot of ['A', 'B'] as const) {
    const version = state.slotVersions[slot];
    if (version === undefined) continue;
    const security = state.slotSecurity[slot];
    const deploymentId = state.slotDeployments[slot];
    slots[slot] = { version, ...definedProps({ securityVersion: security, deploymentId }) };
  }
  return {
    v: DURABLE_RECORD_VERSION,
    gen,
    securityFloor: state.securityFloor,
    manifestVersion: state.manifestVersion,
    ...definedProps({ manifestDeployment: state.manifestDeployment }),
    seqReserved: state.seqReserved,
    commandSeq: state.commandSeq,
    handled: state.handled.slice(-DURABLE_HANDLED_LIMIT),
    slots,
  };
}

/** Equal apart from the generation (nothing to write). */
export function sameDurable(a: DurableRecord, b: DurableRecord): boolean {
  return JSON.stringify({ ...a, gen: 0 }) === JSON.stringify({ ...b, gen: 0 });
}

/** One line of JSON: what the slot backends store (a U-Boot variable holds one line). */
export function encodeDurable(record: DurableRecord): string {
  return JSON.stringify(record);
}

/** Parses a stored record; null (with the reason) when it is missing or damaged. */
export function decodeDurable(text: string | null, what: string): { record: DurableRecord | null; problem?: string } {
  if (text === null || text.trim() === '') return { record: null };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { record: null, problem: `${what} is not JSON: ${errorMessage(err)}` };
  }
  const parsed = parseValue(DurableRecordSchema, value, what);
  return parsed.ok ? { record: parsed.value } : { record: null, problem: parsed.error.message };
}

/**
 * Combines copies of the record: every monotonic value at its highest (a copy that missed a write
 * can only be behind), the newest manifest with the deployment it came under, and what the slots
 * hold and what finished from the newest generation.
 */
export function mergeDurable(records: readonly (DurableRecord | null)[]): DurableRecord | null {
  const present = records.filter((r): r is DurableRecord => r !== null);
  if (present.length === 0) return null;
  const newest = present.reduce((a, b) => (b.gen > a.gen ? b : a));
  const freshest = present.reduce((a, b) => (b.manifestVersion > a.manifestVersion || (b.manifestVersion === a.manifestVersion && b.gen > a.gen) ? b : a));
  const max = (pick: (r: DurableRecord) => number): number => Math.max(...present.map(pick));
  return {
    v: DURABLE_RECORD_VERSION,
    gen: newest.gen,
    securityFloor: max((r) => r.securityFloor),
    manifestVersion: freshest.manifestVersion,
    ...definedProps({ manifestDeployment: freshest.manifestDeployment }),
    seqReserved: max((r) => r.seqReserved),
    commandSeq: max((r) => r.commandSeq),
    handled: newest.handled,
    slots: newest.slots,
  };
}

/** What the config says about a device fresh from the factory. */
export interface FactoryFacts {
  firmwareVersion: string;
  securityFloor: number;
}

/**
 * The state of an agent without a state file: from the durable record when there is one (what each
 * slot holds, the floor, the freshness counters, the status sequence), the bootloader's booted slot,
 * and the config's factory values only for what the record cannot say. `notes` tell the operator what
 * was assumed.
 */
export function rebuildState(factory: FactoryFacts, booted: SlotName, record: DurableRecord | null): { state: AgentState; notes: string[] } {
  const base = initialAgentState(factory.firmwareVersion, booted, factory.securityFloor);
  if (!record) return { state: base, notes: [] };
  const notes: string[] = [];
  const slotVersions: AgentState['slotVersions'] = {};
  const slotDeployments: AgentState['slotDeployments'] = {};
  const slotSecurity: AgentState['slotSecurity'] = {};
  for (const slot of ['A', 'B'] as const) {
    const s = record.slots[slot];
    if (!s) continue;
    slotVersions[slot] = s.version;
    if (s.deploymentId !== undefined) slotDeployments[slot] = s.deploymentId;
    if (s.securityVersion !== undefined) slotSecurity[slot] = s.securityVersion;
  }
  if (slotVersions[booted] === undefined) {
    // The record does not know the running slot (it was written before that slot got an image the
    // agent installed): the factory version is the best guess, and nothing is known of its security.
    slotVersions[booted] = factory.firmwareVersion;
    delete slotDeployments[booted];
    delete slotSecurity[booted];
    notes.push(`the durable record does not say what slot ${booted} holds; assuming the factory version ${factory.firmwareVersion}`);
  }
  const state: AgentState = {
    ...base,
    seq: record.seqReserved,
    seqReserved: record.seqReserved,
    slotVersions,
    slotDeployments,
    slotSecurity,
    securityFloor: Math.max(factory.securityFloor, record.securityFloor),
    handled: [...record.handled],
    manifestVersion: record.manifestVersion,
    ...definedProps({ manifestDeployment: record.manifestDeployment }),
    commandSeq: record.commandSeq,
  };
  return { state, notes };
}

/**
 * A loaded state raised to the durable record: a state file restored from an older backup (or one
 * written before a crash that the record survived) never takes the floor, the freshness counters or
 * the status sequence backwards.
 */
export function raiseToDurable(state: AgentState, record: DurableRecord | null): AgentState {
  if (!record) return state;
  const next: AgentState = {
    ...state,
    securityFloor: Math.max(state.securityFloor, record.securityFloor),
    commandSeq: Math.max(state.commandSeq, record.commandSeq),
  };
  if (record.manifestVersion > state.manifestVersion) {
    next.manifestVersion = record.manifestVersion;
    if (record.manifestDeployment !== undefined) next.manifestDeployment = record.manifestDeployment;
    else delete next.manifestDeployment;
  }
  if (state.seqReserved < record.seqReserved) {
    // An older state file: its seq may be below what was sent since; start above all of it.
    next.seq = Math.max(state.seq, record.seqReserved);
    next.seqReserved = record.seqReserved;
  }
  let handled = next.handled;
  for (const id of record.handled) if (!handled.includes(id)) handled = remember(handled, id, HANDLED_LIMIT);
  next.handled = handled;
  return next;
}

/** Reserves the next block of status seqs when the current one is used up (before it is used). */
export function reserveSeq(state: AgentState): AgentState {
  if (state.seq < state.seqReserved) return state;
  return { ...state, seqReserved: state.seq + STATUS_SEQ_BLOCK };
}
