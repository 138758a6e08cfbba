/**
 * A small record kept as two copies, `<base>.0` and `<base>.1`, each with a generation and a sha256,
 * written alternately in place: the write that a power loss tears is always the older copy, so a read
 * finds the previous record or the new one — on any filesystem, including the FAT boot partition of a
 * Raspberry Pi, which has no atomic rename (the same idea as U-Boot's redundant environment). I/O.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SlotError } from './slot-backend.js';
import { errorMessage } from '@fleet/protocol/errors';

interface Copy {
  gen: number;
  record: string;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function parseCopy(text: string): Copy | null {
  // `<gen> <sha256> <record>\n`: the record is one line, so a torn copy fails its checksum.
  const m = /^(\d{1,15}) ([0-9a-f]{64}) (.*)\n$/s.exec(text);
  if (!m) return null;
  const [, gen, sum, record] = m as unknown as [string, string, string, string];
  if (record.includes('\n') || sha256(`${gen} ${record}`) !== sum) return null;
  return { gen: Number(gen), record };
}

async function readCopy(path: string): Promise<Copy | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SlotError('bootloader-error', `cannot read the durable record ${path}: ${errorMessage(err)}`, { cause: err });
  }
  return parseCopy(text);
}

export class DurableCopies {
  constructor(private readonly base: string) {}

  private path(i: 0 | 1): string {
    return `${this.base}.${i}`;
  }

  private async newest(): Promise<{ copy: Copy | null; index: 0 | 1 | null }> {
    const copies = [await readCopy(this.path(0)), await readCopy(this.path(1))] as const;
    let best: { copy: Copy | null; index: 0 | 1 | null } = { copy: null, index: null };
    copies.forEach((c, i) => {
      if (c && (best.copy === null || c.gen > best.copy.gen)) best = { copy: c, index: i as 0 | 1 };
    });
    return best;
  }

  /** The newest intact record, or null when neither copy is. */
  async read(): Promise<string | null> {
    return (await this.newest()).copy?.record ?? null;
  }

  /** Writes over the older copy (in place, fsync'd), then reads it back. */
  async write(record: string): Promise<void> {
    const { copy, index } = await this.newest();
    const target: 0 | 1 = index === 0 ? 1 : 0;
    const gen = (copy?.gen ?? 0) + 1;
    const text = `${gen} ${sha256(`${gen} ${record}`)} ${record}\n`;
    const path = this.path(target);
    try {
      await mkdir(dirname(path), { recursive: true });
      const fh = await open(path, 'w', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new SlotError('bootloader-error', `cannot write the durable record ${path}: ${errorMessage(err)}`, { cause: err });
    }
    const back = await readCopy(path);
    if (back?.record !== record) throw new SlotError('bootloader-error', `the durable record ${path} did not read back as written; check the storage`);
  }
}
