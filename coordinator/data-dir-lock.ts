/**
 * One data directory, one coordinator. The lock is an exclusive SQLite lock on
 * `<data-dir>/coordinator.lock` (SQLite's unix VFS takes a POSIX record lock), held for the process's
 * life: the kernel drops it when the process dies, so a coordinator killed with SIGKILL never leaves a
 * stale lock behind, and SQLite also sees a second connection in the same process. Beside it,
 * `coordinator.owner.json` names the holder (pid, start time, URLs) for the refusal message, and says
 * whether the previous holder stopped cleanly. I/O shell (SQLite, fs).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { FleetError, errorMessage } from '@fleet/protocol/errors';

const OwnerSchema = z.object({
  pid: z.number().int(),
  host: z.string().optional(),
  startedAt: z.number(),
  adminUrl: z.string().optional(),
  mqttUrl: z.string().optional(),
  /** Set by a clean stop; absent after a crash or SIGKILL. */
  stoppedAt: z.number().optional(),
});
export type DataDirOwner = z.infer<typeof OwnerSchema>;

export class DataDirInUseError extends FleetError {
  constructor(
    readonly dataDir: string,
    readonly owner: DataDirOwner | undefined,
  ) {
    const who = owner
      ? `coordinator pid ${owner.pid}${owner.host ? ` on ${owner.host}` : ''}${owner.adminUrl ? `, admin API ${owner.adminUrl}` : ''}, started ${new Date(owner.startedAt).toISOString()}`
      : 'another coordinator';
    super(
      'data-dir-in-use',
      `data directory ${dataDir} is in use by ${who}; stop it first${owner ? ` (kill ${owner.pid})` : ''}, or start this one with another --data-dir`,
    );
  }
}

export const lockPath = (dataDir: string): string => join(dataDir, 'coordinator.lock');
export const ownerPath = (dataDir: string): string => join(dataDir, 'coordinator.owner.json');

/** The owner file's contents, or undefined when missing or unreadable. */
export function readOwner(dataDir: string): DataDirOwner | undefined {
  try {
    const parsed = OwnerSchema.safeParse(JSON.parse(readFileSync(ownerPath(dataDir), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function writeOwner(dataDir: string, owner: DataDirOwner): void {
  const path = ownerPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(owner) + '\n');
  renameSync(tmp, path);
}

const isBusy = (err: unknown): boolean => {
  const code = (err as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
};

export class DataDirLock {
  private released = false;

  private constructor(
    readonly dataDir: string,
    private readonly db: Database.Database,
    private owner: DataDirOwner,
    /** The previous holder ended without a clean stop (crash, SIGKILL, power loss). */
    readonly previousUnclean: boolean,
  ) {}

  /** Takes the lock or throws DataDirInUseError naming the holder. The directory must exist. */
  static acquire(dataDir: string, now: number): DataDirLock {
    // timeout 0: fail at once instead of better-sqlite3's default 5-second busy wait.
    const db = new Database(lockPath(dataDir), { timeout: 0 });
    try {
      db.pragma('journal_mode = OFF');
      db.pragma('locking_mode = EXCLUSIVE');
      // In exclusive locking mode the lock taken by this transaction is kept after it ends, until close.
      db.exec('BEGIN EXCLUSIVE');
      db.exec('COMMIT');
    } catch (err) {
      db.close();
      if (isBusy(err)) throw new DataDirInUseError(dataDir, readOwner(dataDir));
      throw new FleetError('data-dir-lock', `cannot lock data directory ${dataDir}: ${errorMessage(err)}; check its permissions`, { cause: err });
    }
    const previous = readOwner(dataDir);
    const owner: DataDirOwner = { pid: process.pid, host: hostname(), startedAt: now };
    const lock = new DataDirLock(dataDir, db, owner, previous !== undefined && previous.stoppedAt === undefined);
    try {
      writeOwner(dataDir, owner);
    } catch (err) {
      lock.release();
      throw new FleetError('data-dir-lock', `cannot write ${ownerPath(dataDir)}: ${errorMessage(err)}; check the data directory's permissions`, { cause: err });
    }
    return lock;
  }

  /** Records where this coordinator listens, for the message a second one prints. */
  announce(urls: { adminUrl: string; mqttUrl: string }): void {
    if (this.released) return;
    this.owner = { ...this.owner, ...urls };
    writeOwner(this.dataDir, this.owner);
  }

  /** Marks a clean stop and drops the lock. Safe twice. */
  release(options: { stoppedAt?: number } = {}): void {
    if (this.released) return;
    this.released = true;
    try {
      if (options.stoppedAt !== undefined) writeOwner(this.dataDir, { ...this.owner, stoppedAt: options.stoppedAt });
    } finally {
      this.db.close();
    }
  }
}
