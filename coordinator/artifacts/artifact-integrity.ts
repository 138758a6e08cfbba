/**
 * Stored images are checked, not trusted: a file truncated or altered on disk (a failing disk, a
 * careless operator, a restore from a bad backup) must never be served or deployed. Each image's size
 * and sha256 are checked once per process (all of them in the background at start-up, or on first
 * use), and the file's identity (size, inode, mtime, ctime) is remembered with the result: a later use
 * costs one stat, and any change to the file means a full check again. A damaged image is marked,
 * logged, counted and reported once per finding; putting the same bytes back (uploading the image
 * again) makes it whole. I/O shell (fs, node:crypto).
 */
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import type { Counters } from '../metrics.js';
import type { ArtifactStore } from './artifact-store.js';
import { definedProps } from '@fleet/firmware/defined-props';

export type IntegrityStatus = 'unchecked' | 'verified' | 'damaged';

export interface IntegrityView {
  status: IntegrityStatus;
  /** Why it is damaged. */
  reason?: string;
  /** When it was last fully checked (clock time). */
  checkedAt?: number;
}

export class ArtifactDamagedError extends FleetError {
  constructor(version: string, reason: string) {
    super(
      'artifact-damaged',
      `firmware ${version} is damaged on the coordinator (${reason}); it is not served or deployed until the same image is uploaded again with \`fleet firmware upload\``,
    );
  }
}

interface Fingerprint {
  size: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
}

const fingerprintOf = (s: Stats): Fingerprint => ({ size: s.size, ino: s.ino, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs });
const sameFile = (a: Fingerprint, b: Fingerprint): boolean =>
  a.size === b.size && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

interface Entry extends IntegrityView {
  /** The file as it was when `status` was established; a different file is checked again. */
  file?: Fingerprint;
}

export interface ArtifactIntegrityDeps {
  store: ArtifactStore;
  counters: Counters;
  logger: Logger;
  now: () => number;
  /** A new finding about an image: found damaged (with the reason) or whole again after being damaged. */
  onChange?: (sha256: string, view: IntegrityView) => void;
}

export class ArtifactIntegrity {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<IntegrityView>>();
  private readonly abort = new AbortController();
  private scan: Promise<void> | undefined;

  constructor(private readonly deps: ArtifactIntegrityDeps) {}

  /** What is known now, without touching the disk. */
  view(sha256: string): IntegrityView {
    const e = this.entries.get(sha256);
    if (!e) return { status: 'unchecked' };
    return { status: e.status, ...definedProps({ reason: e.reason, checkedAt: e.checkedAt }) };
  }

  /**
   * Checks an image of `size` bytes: one stat when the file is the one already checked, a full size and
   * sha256 check otherwise. Concurrent callers share one check.
   */
  async check(sha256: string, size: number): Promise<IntegrityView> {
    let st: Stats;
    try {
      st = await stat(this.deps.store.pathOf(sha256));
    } catch {
      return this.settle(sha256, { status: 'damaged', reason: 'the image file is missing' });
    }
    if (st.size !== size) return this.settle(sha256, { status: 'damaged', reason: `the image file has ${st.size} bytes, not ${size}` }, fingerprintOf(st));
    const known = this.entries.get(sha256);
    if (known?.file && known.status !== 'unchecked' && sameFile(known.file, fingerprintOf(st))) return this.view(sha256);
    const running = this.inflight.get(sha256);
    if (running) return running;
    const job = this.hash(sha256, size, fingerprintOf(st)).finally(() => this.inflight.delete(sha256));
    this.inflight.set(sha256, job);
    return job;
  }

  /** Checks every stored image, one at a time, in the background. Safe to call twice. */
  startScan(): void {
    if (this.scan) return;
    this.scan = (async () => {
      const seen = new Set<string>();
      for (const a of this.deps.store.list()) {
        if (this.abort.signal.aborted) return;
        if (seen.has(a.sha256)) continue;
        seen.add(a.sha256);
        try {
          await this.check(a.sha256, a.size);
        } catch (err) {
          if (!this.abort.signal.aborted) this.deps.logger.error({ err, sha256: a.sha256 }, 'checking a stored image failed');
        }
      }
      this.deps.logger.info({ images: seen.size, damaged: [...seen].filter((s) => this.view(s).status === 'damaged').length }, 'stored images checked');
    })();
  }

  /** Stops the background scan and any hashing in progress. Safe twice. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.scan?.catch(() => undefined);
    await Promise.allSettled([...this.inflight.values()]);
  }

  private async hash(sha256: string, size: number, file: Fingerprint): Promise<IntegrityView> {
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      const stream = createReadStream(this.deps.store.pathOf(sha256), { highWaterMark: 1024 * 1024, signal: this.abort.signal });
      for await (const chunk of stream) {
        bytes += (chunk as Buffer).length;
        hash.update(chunk as Buffer);
      }
    } catch (err) {
      if (this.abort.signal.aborted) return this.view(sha256);
      return this.settle(sha256, { status: 'damaged', reason: `the image file cannot be read: ${errorMessage(err)}` });
    }
    const actual = hash.digest('hex');
    if (bytes !== size) return this.settle(sha256, { status: 'damaged', reason: `the image file has ${bytes} bytes, not ${size}` }, file);
    if (actual !== sha256) return this.settle(sha256, { status: 'damaged', reason: `the image file's sha256 is ${actual}` }, file);
    return this.settle(sha256, { status: 'verified' }, file);
  }

  /** Records a result; reports a new finding (damaged, or whole again) once. */
  private settle(sha256: string, result: { status: 'verified' | 'damaged'; reason?: string }, file?: Fingerprint): IntegrityView {
    const before = this.entries.get(sha256);
    const entry: Entry = { ...result, checkedAt: this.deps.now(), ...(file ? { file } : {}) };
    this.entries.set(sha256, entry);
    const view = this.view(sha256);
    if (result.status === 'damaged' && (before?.status !== 'damaged' || before.reason !== result.reason)) {
      this.deps.counters.inc('artifacts.damaged');
      this.deps.logger.error({ sha256, reason: result.reason }, 'stored firmware image is damaged: not served or deployed until uploaded again');
      this.deps.onChange?.(sha256, view);
    } else if (result.status === 'verified' && before?.status === 'damaged') {
      this.deps.logger.info({ sha256 }, 'stored firmware image is whole again');
      this.deps.onChange?.(sha256, view);
    }
    return view;
  }
}
