/**
 * Firmware artifacts: content-addressed image files (`artifacts/<sha256>` in the data dir) and their
 * signed manifests in the store (SQLite or PostgreSQL). An upload is streamed to a temporary file while
 * hashed, then renamed into place, so a crash never leaves a half image under a valid name; what
 * happens to the file later is artifact-integrity.ts's concern. Records are few (one per firmware
 * version) and read on every download and deployment: they are kept in memory, read at start and
 * written through (`record` resolves once stored). An upload on another coordinator sharing the
 * store is seen after `reload`. I/O shell (fs, the store).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { FleetError, ValidationError } from '@fleet/protocol/errors';
import { SemverSchema, HardwareModelSchema } from '@fleet/protocol/ids';
import type { Envelope, Manifest } from '@fleet/protocol/signed';
import type { Sql } from '../store/sql.js';

export interface ArtifactRecord {
  sha256: string;
  firmwareVersion: string;
  hardware: string[];
  size: number;
  /** The manifest signed at upload (coordinator key) or the one signed offline. */
  manifest: Envelope;
  offlineSigned: boolean;
  uploadedAt: number;
}

export class ArtifactExistsError extends FleetError {
  constructor(version: string) {
    super('artifact-exists', `firmware ${version} is already uploaded; versions are immutable — bump the version`);
  }
}

export class ArtifactNotFoundError extends FleetError {
  constructor(what: string) {
    super('not-found', `no firmware ${what}; upload it with \`fleet firmware upload <image> --version … --hardware …\``);
  }
}

interface Row {
  sha256: string;
  firmware_version: string;
  hardware: string;
  size: number;
  manifest_json: string;
  offline_signed: number;
  uploaded_at: number;
}

const fromRow = (r: Row): ArtifactRecord => ({
  sha256: r.sha256,
  firmwareVersion: r.firmware_version,
  hardware: JSON.parse(r.hardware) as string[],
  size: r.size,
  manifest: JSON.parse(r.manifest_json) as Envelope,
  offlineSigned: r.offline_signed === 1,
  uploadedAt: r.uploaded_at,
});

export class ArtifactStore {
  readonly dir: string;
  /** By firmware version. */
  private readonly records = new Map<string, ArtifactRecord>();

  /** `dir`: where images are kept (the data directory's `artifacts`, or a directory replicas share). */
  private constructor(private readonly sql: Sql, dir: string) {
    this.dir = dir;
  }

  /** Reads every artifact record; images live in `dir`. */
  static async load(sql: Sql, dir: string): Promise<ArtifactStore> {
    const store = new ArtifactStore(sql, dir);
    await store.reload();
    return store;
  }

  /** Reads the records again (another coordinator on the same store may have uploaded since). */
  async reload(): Promise<void> {
    const rows = await this.sql.all<Row>('SELECT * FROM artifacts');
    this.records.clear();
    for (const r of rows) this.records.set(r.firmware_version, fromRow(r));
  }

  /** Path of an image by its sha256 (which must be valid hex). */
  pathOf(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ValidationError('artifact id', ['must be a sha256 in lowercase hex']);
    return join(this.dir, sha256);
  }

  /** Streams an image into the store; returns its size and sha256. */
  async ingest(source: Readable, maxBytes = 4 * 1024 ** 3): Promise<{ size: number; sha256: string }> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.upload-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > maxBytes) return cb(new ValidationError('image', [`larger than ${maxBytes} bytes`]));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(tmp, { mode: 0o644 }));
      if (size === 0) throw new ValidationError('image', ['is empty']);
      const sha256 = hash.digest('hex');
      await rename(tmp, this.pathOf(sha256));
      return { size, sha256 };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /**
   * Records an artifact with its signed manifest; resolves once stored. Versions are immutable: the
   * store refuses a second record of a version even when another coordinator made the first.
   */
  async record(input: { manifest: Envelope; signed: Manifest; offlineSigned: boolean; uploadedAt: number }): Promise<ArtifactRecord> {
    const m = input.signed;
    SemverSchema.parse(m.firmwareVersion);
    for (const h of m.hardware) HardwareModelSchema.parse(h);
    if (this.get(m.firmwareVersion)) throw new ArtifactExistsError(m.firmwareVersion);
    const row = await this.sql.get<Row>(
      `INSERT INTO artifacts (sha256, firmware_version, hardware, size, file_name, manifest_json, offline_signed, uploaded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (firmware_version) DO NOTHING RETURNING *`,
      [m.artifact.sha256, m.firmwareVersion, JSON.stringify(m.hardware), m.artifact.size, m.artifact.sha256,
        JSON.stringify(input.manifest), input.offlineSigned ? 1 : 0, input.uploadedAt],
    );
    if (!row) throw new ArtifactExistsError(m.firmwareVersion);
    const record = fromRow(row);
    this.records.set(record.firmwareVersion, record);
    return record;
  }

  get(firmwareVersion: string): ArtifactRecord | undefined {
    return this.records.get(firmwareVersion);
  }

  require(firmwareVersion: string): ArtifactRecord {
    const a = this.get(firmwareVersion);
    if (!a) throw new ArtifactNotFoundError(firmwareVersion);
    return a;
  }

  bySha(sha256: string): ArtifactRecord | undefined {
    for (const a of this.records.values()) if (a.sha256 === sha256) return a;
    return undefined;
  }

  /** Newest upload first. */
  list(): ArtifactRecord[] {
    return [...this.records.values()].sort((a, b) => b.uploadedAt - a.uploadedAt);
  }
}
