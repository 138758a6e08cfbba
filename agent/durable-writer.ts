/**
 * Keeps the durable record's two copies (durable-record.ts): the data directory's (through the state
 * store) and the boot environment's (through the slot backend). Reads and merges them at start; after
 * each saved state writes them when what they hold changed. I/O shell.
 *
 * The data-directory copy is written first and must succeed (like the state file). A boot environment
 * that refuses a write is logged and retried at the next save: the update goes on, held by the other
 * copy, rather than stopping a device over a flaky environment.
 */
import type { Logger } from 'pino';
import type { AgentState } from './agent-state.js';
import { decodeDurable, durableOf, encodeDurable, mergeDurable, sameDurable, type DurableRecord } from './durable-record.js';
import type { SlotBackend } from './slots/slot-backend.js';
import type { StateStore } from './state-store.js';
import { errorMessage } from '@fleet/protocol/errors';

export class DurableWriter {
  private last: DurableRecord | null = null;
  /** The boot environment missed a write: retry even when nothing changed since. */
  private slotsBehind = false;

  constructor(
    private readonly store: StateStore,
    private readonly slots: SlotBackend,
    private readonly logger: Logger,
  ) {}

  /** Both copies merged (every counter at its highest), or null on a device that never wrote one. */
  async load(): Promise<DurableRecord | null> {
    const fromStore = decodeDurable(await this.store.loadDurable(), 'durable.json');
    let fromSlots: ReturnType<typeof decodeDurable>;
    try {
      fromSlots = decodeDurable(await this.slots.readDurable(), `the ${this.slots.kind} boot environment's durable record`);
    } catch (err) {
      fromSlots = { record: null, problem: errorMessage(err) };
    }
    for (const copy of [fromStore, fromSlots]) {
      if (copy.problem !== undefined) this.logger.warn({ problem: copy.problem }, 'a copy of the durable record is unreadable; using the other');
    }
    if (fromStore.record && !fromSlots.record) this.slotsBehind = true;
    this.last = mergeDurable([fromStore.record, fromSlots.record]);
    return this.last;
  }

  /** Writes both copies if `state`'s durable part differs from what was written last. */
  async write(state: AgentState): Promise<void> {
    const next = durableOf(state, (this.last?.gen ?? 0) + 1);
    const changed = !this.last || !sameDurable(this.last, next);
    if (!changed && !this.slotsBehind) return;
    const record = changed ? next : this.last!;
    const text = encodeDurable(record);
    if (changed) await this.store.saveDurable(text);
    this.last = record;
    try {
      await this.slots.writeDurable(text);
      this.slotsBehind = false;
    } catch (err) {
      this.slotsBehind = true;
      this.logger.error({ err: errorMessage(err) }, 'cannot write the durable record to the boot environment; the data directory copy holds it, retrying at the next save');
    }
  }
}
