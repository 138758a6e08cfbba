/**
 * Firmware artifacts: content-addressed image files (`artifacts/<sha256>` in the data dir) and their
 * signed manifests in SQLite. An upload is streamed to a temporary file while hashed, then renamed into
 * place, so a crash never leaves a half image under a valid name; what happens to the file later is
 * artifact-integrity.ts's concern. I/O shell (fs, SQLite).
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
import type { Db } from '../store/db.js';

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

  /** `dir`: where images are kept (the data directory's `artifacts`, or a directory replicas share). */
  constructor(private readonly db: Db, dir: string) {
    this.dir = dir;
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

  /** Records an artifact with its signed manifest. Versions are immutable. */
  record(input: { manifest: Envelope; signed: Manifest; offlineSigned: boolean; uploadedAt: number }): ArtifactRecord {
    const m = input.signed;
    SemverSchema.parse(m.firmwareVersion);
    for (const h of m.hardware) HardwareModelSchema.parse(h);
    if (this.get(m.firmwareVersion)) throw new ArtifactExistsError(m.firmwareVersion);
    this.db
      .prepare(`INSERT INTO artifacts (sha256, firmware_version, hardware, size, file_name, manifest_json, offline_signed, uploaded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(m.artifact.sha256, m.firmwareVersion, JSON.stringify(m.hardware), m.artifact.size, m.artifact.sha256,
        JSON.stringify(input.manifest), input.offlineSigned ? 1 : 0, input.uploadedAt);
    return this.get(m.firmwareVersion)!;
  }

  get(firmwareVersion: string): ArtifactRecord | undefined {
    const row = this.db.prepare('SELECT * FROM artifacts WHERE firmware_version = ?').get(firmwareVersion) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  require(firmwareVersion: string): ArtifactRecord {
    const a = this.get(firmwareVersion);
    if (!a) throw new ArtifactNotFoundError(firmwareVersion);
    return a;
  }

  bySha(sha256: string): ArtifactRecord | undefined {
    const row = this.db.prepare('SELECT * FROM artifacts WHERE sha256 = ? LIMIT 1').get(sha256) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  list(): ArtifactRecord[] {
    return (this.db.prepare('SELECT * FROM artifacts ORDER BY uploaded_at DESC').all() as Row[]).map(fromRow);
  }
}
