/**
 * Builds the slot backend named in the agent config. I/O adapter.
 *
 * `file` is built in. The hardware backends live in their own modules and are imported only when
 * configured, so a device loads just the one it uses; each exports `create<Kind>Backend(settings, deps)`
 * and parses its own settings.
 */
import type { Logger } from 'pino';
import { ConfigError, errorMessage } from '@fleet/protocol/errors';
import type { AgentConfig } from '../config.js';
import { FileSlotBackend } from './slot-backend-file.js';
import type { SlotBackend } from './slot-backend.js';

const HARDWARE_BACKENDS: Record<string, { module: string; factory: string }> = {
  uboot: { module: './slot-backend-uboot.js', factory: 'createUbootBackend' },
  rauc: { module: './slot-backend-rauc.js', factory: 'createRaucBackend' },
  tryboot: { module: './slot-backend-tryboot.js', factory: 'createTrybootBackend' },
};

export async function createSlotBackend(slots: AgentConfig['slots'], logger: Logger): Promise<SlotBackend> {
  if (slots.kind === 'file') return FileSlotBackend.create({ dir: slots.dir, trialBoots: slots.trialBoots });
  if (slots.kind === 'memory') {
    throw new ConfigError('slots.kind "memory" means the host injects the backend (the simulator); pass `slots` to Agent.create');
  }
  const entry = HARDWARE_BACKENDS[slots.kind];
  if (!entry) throw new ConfigError(`slots.kind ${JSON.stringify(slots.kind)} is not a known slot backend`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(entry.module)) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`slot backend ${slots.kind} is not available in this build: ${errorMessage(err)}`);
  }
  const factory = mod[entry.factory];
  if (typeof factory !== 'function') throw new ConfigError(`slot backend module for ${slots.kind} exports no ${entry.factory}`);
  try {
    const made = (factory as (settings: unknown, deps: { logger: Logger }) => SlotBackend | Promise<SlotBackend>)(slots, {
      logger: logger.child({ module: `slots-${slots.kind}` }),
    });
    return await made;
  } catch (err) {
    if (err instanceof Error && err.name === 'ZodError') throw new ConfigError(`slots: ${err.message}`);
    throw err;
  }
}
