/**
 * Where the agent keeps its state between runs. I/O adapter.
 *
 * `FileStateStore` writes atomically: temp file, fsync, rename, fsync of the directory — so after a
 * power loss the file holds either the previous state or the new one, never a torn mix. Beside
 * state.json it keeps durable.json, the data directory's copy of the durable record
 * (durable-record.ts): a separate file, so moving an unreadable state.json aside leaves it. The
 * simulator uses `MemoryStateStore` (10,000 agents in one process) and keeps it across the simulated
 * reboots of one device.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import { parsePayload } from '@fleet/protocol/parse';
import { AgentStateSchema, type AgentState } from './agent-state.js';

export interface StateStore {
  /** The saved state, or null on a device that has never run the agent. */
  load(): Promise<AgentState | null>;
  /** Replaces the saved state; resolves only once it is durable. */
  save(state: AgentState): Promise<void>;
  /** The data directory's copy of the durable record (one line of JSON), or null when none exists. */
  loadDurable(): Promise<string | null>;
  /** Replaces that copy; resolves only once it is durable. */
  saveDurable(record: string): Promise<void>;
}

export class StateStoreError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('state-store', message, options);
  }
}

/** Writes `data` to `path` atomically and durably (temp + fsync + rename + directory fsync). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${Date.now().toString(36)}-${process.pid}-${Math.floor(Math.random() * 1e9).toString(36)}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  // Make the rename itself durable; some filesystems refuse to open a directory for fsync.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* best effort */
  }
}

export class FileStateStore implements StateStore {
  private readonly durablePath: string;

  constructor(private readonly path: string) {
    this.durablePath = join(dirname(path), 'durable.json');
  }

  async load(): Promise<AgentState | null> {
    let raw: Buffer;
    try {
      raw = await readFile(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StateStoreError(`cannot read agent state ${this.path}: ${errorMessage(err)}`, { cause: err });
    }
    const parsed = parsePayload(AgentStateSchema, raw, this.path);
    if (!parsed.ok) {
      throw new StateStoreError(
        `${parsed.error.message}; the agent will not guess its update state. Move the file aside to start again: the agent then rebuilds its state from the durable record (durable.json and the boot environment) and the bootloader, and reports no update in progress`,
      );
    }
    return parsed.value;
  }

  async save(state: AgentState): Promise<void> {
    await writeFileAtomic(this.path, JSON.stringify(state));
  }

  async loadDurable(): Promise<string | null> {
    try {
      return await readFile(this.durablePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new StateStoreError(`cannot read the durable record ${this.durablePath}: ${errorMessage(err)}`, { cause: err });
    }
  }

  async saveDurable(record: string): Promise<void> {
    await writeFileAtomic(this.durablePath, record);
  }
}

/** Keeps the state in memory (as a JSON string, so callers can never alias it). */
export class MemoryStateStore implements StateStore {
  private data: string | null = null;
  private durable: string | null = null;

  load(): Promise<AgentState | null> {
    return Promise.resolve(this.data === null ? null : AgentStateSchema.parse(JSON.parse(this.data)));
  }

  save(state: AgentState): Promise<void> {
    this.data = JSON.stringify(state);
    return Promise.resolve();
  }

  loadDurable(): Promise<string | null> {
    return Promise.resolve(this.durable);
  }

  saveDurable(record: string): Promise<void> {
    this.durable = record;
    return Promise.resolve();
  }

  /** Loses the state file and keeps the durable record (tests: an operator moved state.json aside). */
  dropState(): void {
    this.data = null;
  }
}
