/**
 * The flag store: current definitions, an append-only change history and audit-log entries, all
 * written in one transaction per change (SQLite or PostgreSQL, through the Sql interface). The current
 * definitions are also held in memory, loaded at creation and replaced after each committed change, so
 * reads stay synchronous and cheap (the gate reads flags when it picks analyzers); `reload()` picks up
 * changes another coordinator made to a shared store. I/O shell around the pure model in flag-model.ts.
 */
import { FleetError } from '@fleet/protocol/errors';
import type { FlagsMessage } from '@fleet/protocol/messages';
import { parseValue } from '@fleet/protocol/parse';
import type { Sql, SqlQueries } from '../store/sql.js';
import {
  DEFAULT_FLAGS,
  evaluateFlag,
  FlagDefinitionSchema,
  type FlagDefinition,
  type FlagDefinitionInput,
  type FlagEvaluation,
  type StoredFlag,
} from './flag-model.js';
import { buildFlagsMessage } from './flags-message.js';
import { definedProps } from '@fleet/firmware/defined-props';

export class FlagNotFoundError extends FleetError {
  constructor(name: string) {
    super('not-found', `no flag named ${name}; run \`fleet flags list\` to see the flags`);
  }
}

export interface FlagChange {
  id: number;
  at: number;
  actor: string;
  name: string;
  action: 'set' | 'kill' | 'delete';
  before: FlagDefinition | null;
  after: FlagDefinition | null;
}

/** An audit entry for a flag change, written by `FlagAudit` inside the change's transaction. */
export interface FlagAuditEntry {
  at: number;
  actor: string;
  /** `flag.set`, `flag.kill`, `flag.delete`. */
  action: string;
  /** `flag:<name>`. */
  subject: string;
  detail: Record<string, unknown>;
}

/** Records a flag change for operators (`fleet audit`); `tx` is the change's transaction: a throw rolls it back. */
export type FlagAudit = (tx: SqlQueries, entry: FlagAuditEntry) => unknown;

export interface FlagStoreOptions {
  sql: Sql;
  /** Milliseconds since the epoch (the injected clock). */
  now: () => number;
  /** Where changes are also recorded for operators (`fleet audit`). */
  audit?: FlagAudit;
  /** Called after each committed change (e.g. to republish the retained device flags). */
  onChange?: (change: FlagChange) => void;
}

interface FlagRow {
  name: string;
  definition_json: string;
  version: number;
  updated_at: number;
  updated_by: string;
}

interface ChangeRow {
  id: number;
  at: number;
  actor: string;
  name: string;
  action: FlagChange['action'];
  before_json: string | null;
  after_json: string | null;
}

/** What `list` returns: stored flags, and well-known defaults never set (`stored: false`). */
export type ListedFlag = StoredFlag & { stored: boolean };

export class FlagStore {
  /** The stored flags as last read or written, by name. */
  private flags = new Map<string, StoredFlag>();
  /** The id of the last change seen. */
  private lastChange = 0;
  /** Changes from this process, one at a time: each merges onto the one before. */
  private writes: Promise<unknown> = Promise.resolve();

  private constructor(private readonly options: FlagStoreOptions) {}

  /** A store with the current flags loaded. */
  static async load(options: FlagStoreOptions): Promise<FlagStore> {
    const store = new FlagStore(options);
    await store.reload();
    return store;
  }

  /** Reads the flags again (changes made by another coordinator on a shared store). */
  async reload(): Promise<void> {
    const { sql } = this.options;
    const [rows, last] = await Promise.all([
      sql.all<FlagRow>('SELECT * FROM flags ORDER BY name'),
      sql.get<{ v: number }>('SELECT COALESCE(MAX(id), 0) AS v FROM flag_changes'),
    ]);
    this.flags = new Map(rows.map((r) => [r.name, FlagStore.toStored(r)]));
    this.lastChange = Math.max(this.lastChange, last?.v ?? 0);
  }

  private static toStored(r: FlagRow): StoredFlag {
    const parsed = parseValue(FlagDefinitionSchema, JSON.parse(r.definition_json), `stored flag ${r.name}`);
    if (!parsed.ok) throw parsed.error;
    return { ...parsed.value, version: r.version, updatedAt: r.updated_at, updatedBy: r.updated_by };
  }

  /** The stored flag, or undefined. */
  get(name: string): StoredFlag | undefined {
    return this.flags.get(name);
  }

  /** The stored flag or its well-known default (version 0), or undefined. */
  effective(name: string): StoredFlag | undefined {
    const stored = this.get(name);
    if (stored) return stored;
    const d = DEFAULT_FLAGS.find((f) => f.name === name);
    return d ? { ...d, version: 0, updatedAt: 0, updatedBy: 'default' } : undefined;
  }

  /** Every stored flag plus well-known defaults, by name. */
  list(): ListedFlag[] {
    const stored = [...this.flags.values()].map((f) => ({ ...f, stored: true }));
    const defaults = DEFAULT_FLAGS.filter((f) => !this.flags.has(f.name)).map((f) => ({ ...f, version: 0, updatedAt: 0, updatedBy: 'default', stored: false }));
    return [...stored, ...defaults].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Evaluates a flag (stored or default) for a stickiness key; an unknown flag is off. */
  evaluate(name: string, key: string): FlagEvaluation {
    const f = this.effective(name);
    if (!f) return { name, enabled: false, reason: 'default', version: 0 };
    return evaluateFlag(f, key);
  }

  /** The store-wide version: the id of the last change (monotonic, never reused). */
  version(): number {
    return this.lastChange;
  }

  /**
   * Creates or updates a flag. `patch` fields override the current (or default) definition; a new flag
   * needs at least `enabled`. Validated as a whole before anything is written.
   */
  set(name: string, patch: Partial<FlagDefinitionInput>, actor: string, reason?: string): Promise<StoredFlag> {
    return this.change(name, 'set', actor, reason, (before) => {
      const base: Record<string, unknown> = before ? stripMeta(before) : {};
      const merged = { ...base, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)), name };
      const parsed = parseValue(FlagDefinitionSchema, merged, `flag ${name}`);
      if (!parsed.ok) throw parsed.error;
      return parsed.value;
    });
  }

  /** The kill switch: turns the flag off for everyone (its rollout and variants are kept). */
  kill(name: string, actor: string, reason?: string): Promise<StoredFlag> {
    return this.change(name, 'kill', actor, reason, (before) => {
      if (!before) throw new FlagNotFoundError(name);
      return { ...stripMeta(before), enabled: false };
    });
  }

  /** Deletes a stored flag (a well-known flag falls back to its default). */
  async delete(name: string, actor: string, reason?: string): Promise<void> {
    await this.change(name, 'delete', actor, reason, (_before, stored) => {
      if (!stored) throw new FlagNotFoundError(name);
      return null;
    });
  }

  /** Change history, newest first. */
  async history(options: { name?: string; limit?: number } = {}): Promise<FlagChange[]> {
    const limit = options.limit ?? 100;
    const rows =
      options.name !== undefined
        ? await this.options.sql.all<ChangeRow>('SELECT * FROM flag_changes WHERE name = ? ORDER BY id DESC LIMIT ?', [options.name, limit])
        : await this.options.sql.all<ChangeRow>('SELECT * FROM flag_changes ORDER BY id DESC LIMIT ?', [limit]);
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: r.actor,
      name: r.name,
      action: r.action,
      before: r.before_json ? (JSON.parse(r.before_json) as FlagDefinition) : null,
      after: r.after_json ? (JSON.parse(r.after_json) as FlagDefinition) : null,
    }));
  }

  /** The retained device-flags message for the current state (device-scope flags only). */
  deviceFlagsMessage(): FlagsMessage {
    return buildFlagsMessage(this.list(), this.version(), this.options.now());
  }

  /**
   * One change: `next` maps the flag as it is in the store now (its effective definition, and whether
   * it is stored) to the new definition, or null to delete it. The history row, the flag and the audit
   * entry are written in one transaction; memory follows once it commits.
   */
  private change<A extends FlagChange['action']>(
    name: string,
    action: A,
    actor: string,
    reason: string | undefined,
    next: (before: StoredFlag | undefined, stored: boolean) => A extends 'delete' ? null : FlagDefinition,
  ): Promise<StoredFlag> {
    const run = async (): Promise<StoredFlag> => {
      const { sql, now } = this.options;
      const at = now();
      const { change, stored } = await sql.transaction(async (tx) => {
        // Read inside the transaction: another coordinator may have changed it since memory was loaded.
        const row = await tx.get<FlagRow>('SELECT * FROM flags WHERE name = ?', [name]);
        const current = row ? FlagStore.toStored(row) : undefined;
        const effective = current ?? this.effective(name);
        const def: FlagDefinition | null = next(effective, row !== undefined);
        const before = action === 'delete' ? (current ? stripMeta(current) : null) : effective ? stripMeta(effective) : null;
        const inserted = await tx.get<{ id: number }>(
          'INSERT INTO flag_changes (at, actor, name, action, before_json, after_json) VALUES (?, ?, ?, ?, ?, ?) RETURNING id',
          [at, actor, name, action, before ? JSON.stringify(before) : null, def ? JSON.stringify(def) : null],
        );
        const c: FlagChange = { id: inserted!.id, at, actor, name, action, before, after: def };
        if (def) {
          await tx.run(
            `INSERT INTO flags (name, definition_json, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET definition_json = excluded.definition_json, version = excluded.version,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
            [name, JSON.stringify(def), c.id, at, actor],
          );
        } else {
          await tx.run('DELETE FROM flags WHERE name = ?', [name]);
        }
        await this.options.audit?.(tx, { at, actor, action: `flag.${action}`, subject: `flag:${name}`, detail: { before, after: def, ...definedProps({ reason }) } });
        return { change: c, stored: def ? { ...def, version: c.id, updatedAt: at, updatedBy: actor } : undefined };
      });
      if (stored) this.flags.set(name, stored);
      else this.flags.delete(name);
      this.lastChange = Math.max(this.lastChange, change.id);
      this.options.onChange?.(change);
      return stored ?? { ...change.before!, version: change.id, updatedAt: at, updatedBy: actor };
    };
    const result = this.writes.then(run, run);
    this.writes = result.catch(() => undefined);
    return result;
  }
}

function stripMeta(f: StoredFlag): FlagDefinition {
  const { version: _v, updatedAt: _u, updatedBy: _b, ...def } = f as StoredFlag & { stored?: boolean };
  delete (def as { stored?: boolean }).stored;
  return def;
}
