/**
 * The agent's passes over an image file — hashing it, copying it into a slot, reading a slot back — in
 * chunks of FILE_PASS_CHUNK. I/O.
 *
 * Node's file streams read 64 KiB at a time (and a write stream asks for a pause past 16 KiB): a
 * 512 KiB image is eight reads, eight hash updates and their callbacks per pass, and a download paused
 * and resumed at every socket chunk. 1 MiB chunks make a small image one read, and bound what a pass
 * holds to about 1 MiB (one chunk buffered, one being hashed or written) — on a Raspberry Pi with
 * 512 MiB or more of RAM, a small share even with a download, a verify and a slot write in flight.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Bytes per read or buffered write in a pass over an image file (1 MiB). */
export const FILE_PASS_CHUNK = 1024 * 1024;

/** Reads `path` in FILE_PASS_CHUNK chunks, handing each to `onChunk`; resolves to the bytes read. */
export async function readChunks(path: string, onChunk: (chunk: Buffer) => void): Promise<number> {
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: FILE_PASS_CHUNK })) {
    size += (chunk as Buffer).length;
    onChunk(chunk as Buffer);
  }
  return size;
}

/** Size and sha256 (hex) of a file. */
export async function sha256OfFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  const size = await readChunks(path, (chunk) => hash.update(chunk));
  return { size, sha256: hash.digest('hex') };
}
