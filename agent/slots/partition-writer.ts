/**
 * Writes a verified image onto a partition device (a block device on hardware, any file in tests) and
 * reads it back, for the uboot and tryboot backends. I/O; the booted partition is never passed here.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { CommandRunner } from './command-runner.js';
import type { VerifiedImage } from './slot-backend.js';
import { SlotError } from './slot-backend.js';
import { errorMessage } from '@fleet/protocol/errors';
import { FILE_PASS_CHUNK } from '../file-passes.js';

const CHUNK = FILE_PASS_CHUNK;

/**
 * Copies `image` onto `device` from offset 0, fsyncs, then reads `image.size` bytes back and compares
 * their sha256 with `image.sha256` (the digest from the signed manifest, not one computed while
 * copying, so a source file changed after verification is caught too).
 * With a `runner`, a block device's cached pages are dropped before the read-back.
 * @throws SlotError `write-failed` (cannot open, short or failed write) or `readback-failed` (mismatch).
 */
export async function writeAndVerify(device: string, image: VerifiedImage, runner?: CommandRunner): Promise<void> {
  let target: FileHandle | undefined;
  let source: FileHandle | undefined;
  try {
    source = await open(image.path, 'r');
    // r+ keeps a block device (or a pre-made partition file) as is; create only a missing plain file.
    target = await open(device, 'r+').catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return open(device, 'w');
      throw err;
    });
    const buf = Buffer.allocUnsafe(CHUNK);
    let offset = 0;
    while (offset < image.size) {
      const { bytesRead } = await source.read(buf, 0, Math.min(CHUNK, image.size - offset), offset);
      if (bytesRead === 0) throw new Error(`image ${image.path} is shorter than its manifest size ${image.size}`);
      let done = 0;
      while (done < bytesRead) {
        const { bytesWritten } = await target.write(buf, done, bytesRead - done, offset + done);
        if (bytesWritten === 0) throw new Error(`device ${device} accepted no more bytes at offset ${offset + done}`);
        done += bytesWritten;
      }
      offset += bytesRead;
    }
    await target.sync();
  } catch (err) {
    throw new SlotError(
      'write-failed',
      `writing ${image.path} to ${device} failed (${errorMessage(err)}); the booted slot is untouched — check the partition device and its size`,
      { cause: err },
    );
  } finally {
    await source?.close();
    await target?.close();
  }
  // On a block device the read-back would otherwise come from the page cache we just filled, not from
  // the flash: drop the device's buffers first (`blockdev --flushbufs`, util-linux).
  if (runner && (await stat(device).then((st) => st.isBlockDevice(), () => false))) {
    const flushed = await runner('blockdev', ['--flushbufs', device], { timeoutMs: 60_000 });
    if (flushed.code !== 0) {
      throw new SlotError('readback-failed', `cannot drop the cached pages of ${device} before reading it back (blockdev --flushbufs exited ${flushed.code}); install util-linux`);
    }
  }
  const actual = await sha256Prefix(device, image.size).catch((err: unknown) => {
    throw new SlotError('readback-failed', `reading ${device} back failed (${errorMessage(err)})`, { cause: err });
  });
  if (actual !== image.sha256.toLowerCase()) {
    throw new SlotError(
      'readback-failed',
      `${device} reads back as sha256 ${actual}, expected ${image.sha256}; the slot was not armed — check the storage for faults`,
    );
  }
}

/** sha256 of the first `size` bytes of `path`; fails if the file is shorter. */
export async function sha256Prefix(path: string, size: number): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(CHUNK, size - offset), offset);
      if (bytesRead === 0) throw new Error(`${path} ends after ${offset} of ${size} bytes`);
      hash.update(buf.subarray(0, bytesRead));
      offset += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}
