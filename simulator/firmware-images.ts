/**
 * Deterministic firmware images for a simulated run: the bytes of each version are a hash chain of
 * the scenario name, seed and version, so two runs with the same seed build identical images. Pure.
 */
import { createHash } from 'node:crypto';

export function imageBytes(label: string, sizeKiB: number): Buffer {
  const size = sizeKiB * 1024;
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(label).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function digest(bytes: Buffer): { sha256: string; size: number } {
  return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}
