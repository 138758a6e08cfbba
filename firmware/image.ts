/** Size and sha256 of an image file, streamed so large images need no memory. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export async function digestFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { size, sha256: hash.digest('hex') };
}
