/**
 * The SQLite flag store: current definitions, an append-only change history and audit-log entries, all
 * written in one transaction per change. Reads are synchronous and cheap (the gate reads flags when it
 * picks analyzers). I/O shell around the pure model in flag-model.ts.
 */
import { FleetError } from '@fleet/protocol/errors';
import type { FlagsMessage } from '@fleet/protocol/messages';
import { parseValue } from '@fleet/protocol/parse';
import type { Db } from '../store/db.js';
import type { AuditLog } from '../store/audit-log.js';
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

export interface FlagStoreOptions {
  db: Db;
  /** Milliseconds since the epoch (the injected clock). */
  now: () => number;
  /** Where changes are also recorded for operators (`fleet audit`). */
  audit?: AuditLog;
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

/** What `list` returns: stored flags, and well-known defaults never set (`stored: false`). */
export type ListedFlag = StoredFlag & { stored: boolean };

export class FlagStore {
  constructor(private readonly options: FlagStoreOptions) {}

  private row(name: string): FlagRow | undefined {
    return this.options.db.prepare('SELECT * FROM flags WHERE name = ?').get(name) as FlagRow | undefined;
  }

  private static toStored(r: FlagRow): StoredFlag {
    const parsed = parseValue(FlagDefinitionSchema, JSON.parse(r.definition_json), `stored flag ${r.name}`);
    if (!parsed.ok) throw parsed.error;
    return { ...parsed.value, version: r.version, updatedAt: r.updated_at, updatedBy: r.updated_by };
  }

  /** The stored flag, or undefined. */
  get(name: string): StoredFlag | undefined {
    const r = this.row(name);
    return r ? FlagStore.toStored(r) : undefined;
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
    const rows = this.options.db.prepare('SELECT * FROM flags ORDER BY name').all() as FlagRow[];
    const stored = rows.map((r) => ({ ...FlagStore.toStored(r), stored: true }));
    const names = new Set(stored.map((f) => f.name));
    const defaults = DEFAULT_FLAGS.filter((f) => !names.has(f.name)).map((f) => ({ ...f, version: 0, updatedAt: 0, updatedBy: 'default', stored: false }));
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
    const r = this.options.db.prepare('SELECT COALESCE(MAX(id), 0) AS v FROM flag_changes').get() as { v: number };
    return r.v;
  }

  /**
   * Creates or updates a flag. `patch` fields override the current (or default) definition; a new flag
   * needs at least `enabled`. Validated as a whole before anything is written.
   */
  set(name: string, patch: Partial<FlagDefinitionInput>, actor: string, reason?: string): StoredFlag {
    const before = this.effective(name);
    const base: Record<string, unknown> = before ? stripMeta(before) : {};
    const merged = { ...base, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)), name };
    const parsed = parseValue(FlagDefinitionSchema, merged, `flag ${name}`);
    if (!parsed.ok) throw parsed.error;
    return this.write(name, parsed.value, 'set', actor, before ? stripMeta(before) : null, reason);
  }

  /** The kill switch: turns the flag off for everyone (its rollout and variants are kept). */
  kill(name: string, actor: string, reason?: string): StoredFlag {
    const before = this.effective(name);
    if (!before) throw new FlagNotFoundError(name);
    return this.write(name, { ...stripMeta(before), enabled: false }, 'kill', actor, stripMeta(before), reason);
  }

  /** Deletes a stored flag (a well-known flag falls back to its default). */
  delete(name: string, actor: string, reason?: string): void {
    const before = this.get(name);
    if (!before) throw new FlagNotFoundError(name);
    const { db, now } = this.options;
    const at = now();
    let change: FlagChange | undefined;
    db.transaction(() => {
      db.prepare('DELETE FROM flags WHERE name = ?').run(name);
      change = this.record(at, actor, name, 'delete', stripMeta(before), null, reason);
    })();
    if (change) this.options.onChange?.(change);
  }

  /** Change history, newest first. */
  history(options: { name?: string; limit?: number } = {}): FlagChange[] {
    const limit = options.limit ?? 100;
    const rows = (options.name !== undefined
      ? this.options.db.prepare('SELECT * FROM flag_changes WHERE name = ? ORDER BY id DESC LIMIT ?').all(options.name, limit)
      : this.options.db.prepare('SELECT * FROM flag_changes ORDER BY id DESC LIMIT ?').all(limit)) as {
      id: number; at: number; actor: string; name: string; action: FlagChange['action']; before_json: string | null; after_json: string | null;
    }[];
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

  private write(name: string, def: FlagDefinition, action: 'set' | 'kill', actor: string, before: FlagDefinition | null, reason?: string): StoredFlag {
    const { db, now } = this.options;
    const at = now();
    let change: FlagChange | undefined;
    db.transaction(() => {
      change = this.record(at, actor, name, action, before, def, reason);
      db.prepare(
        `INSERT INTO flags (name, definition_json, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET definition_json = excluded.definition_json, version = excluded.version,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      ).run(name, JSON.stringify(def), change.id, at, actor);
    })();
    if (change) this.options.onChange?.(change);
    return { ...def, version: change!.id, updatedAt: at, updatedBy: actor };
  }

  /** One history row, and an audit entry that also carries the operator's reason. */
  private record(at: number, actor: string, name: string, action: FlagChange['action'], before: FlagDefinition | null, after: FlagDefinition | null, reason?: string): FlagChange {
    const info = this.options.db
      .prepare('INSERT INTO flag_changes (at, actor, name, action, before_json, after_json) VALUES (?, ?, ?, ?, ?, ?)')
      .run(at, actor, name, action, before ? JSON.stringify(before) : null, after ? JSON.stringify(after) : null);
    this.options.audit?.appendLater(at, actor, `flag.${action}`, `flag:${name}`, { before, after, ...definedProps({ reason }) });
    return { id: Number(info.lastInsertRowid), at, actor, name, action, before, after };
  }
}

function stripMeta(f: StoredFlag): FlagDefinition {
  const { version: _v, updatedAt: _u, updatedBy: _b, ...def } = f as StoredFlag & { stored?: boolean };
  delete (def as { stored?: boolean }).stored;
  return def;
}
