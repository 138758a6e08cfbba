/**
 * Raspberry Pi `autoboot.txt` (on the FAT boot partition): parse, swap the partitions, and rewrite it
 * in place with a verify-after-write, plus reading the bootloader's device-tree integers. The parse and
 * render functions are pure; `writeAutoboot` and `readDtInteger` do I/O.
 *
 *   [all]                 ← what the firmware boots by default (the committed slot)
 *   tryboot_a_b=1
 *   boot_partition=2
 *   [tryboot]             ← what `reboot '0 tryboot'` boots once
 *   boot_partition=3
 */
import { open, readFile } from 'node:fs/promises';
import { SlotError } from './slot-backend.js';
import { errorMessage } from '@fleet/protocol/errors';

/** Lines per section, in file order; keys outside any section go under '' . */
export interface Autoboot {
  sections: { name: string; lines: string[] }[];
}

/** The firmware reads at most this much of autoboot.txt. */
export const AUTOBOOT_MAX_BYTES = 512;

export function parseAutoboot(text: string): Autoboot {
  const sections: Autoboot['sections'] = [{ name: '', lines: [] }];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) sections.push({ name: header[1]!.toLowerCase(), lines: [] });
    else sections[sections.length - 1]!.lines.push(line);
  }
  return { sections: sections.filter((s) => s.name !== '' || s.lines.length > 0) };
}

/** `key` in `section` (last one wins, as in config.txt), or undefined. */
export function autobootValue(a: Autoboot, section: string, key: string): string | undefined {
  let value: string | undefined;
  for (const s of a.sections) {
    if (s.name !== section) continue;
    for (const line of s.lines) {
      const eq = line.indexOf('=');
      if (eq > 0 && line.slice(0, eq).trim() === key) value = line.slice(eq + 1).trim();
    }
  }
  return value;
}

/**
 * Returns a copy where `[all]` boots `primary` and `[tryboot]` boots `trial`, with tryboot_a_b=1; every
 * other line is kept. Pure.
 */
export function withPartitions(a: Autoboot, primary: number, trial: number): Autoboot {
  const set = (sections: Autoboot['sections'], name: string, key: string, value: string): Autoboot['sections'] => {
    const isKey = (l: string): boolean => l.split('=')[0]!.trim() === key;
    const idx = sections.findIndex((s) => s.name === name);
    if (idx < 0) return [...sections, { name, lines: [`${key}=${value}`] }];
    const lines = sections[idx]!.lines;
    // Replace in place (keeping the order a human wrote), dropping duplicates; append when missing.
    const first = lines.findIndex(isKey);
    const next = first < 0 ? [...lines, `${key}=${value}`] : lines.flatMap((l, i) => (i === first ? [`${key}=${value}`] : isKey(l) ? [] : [l]));
    return sections.map((s, i) => (i === idx ? { name, lines: next } : s));
  };
  let sections = a.sections.map((s) => ({ name: s.name, lines: [...s.lines] }));
  sections = set(sections, 'all', 'tryboot_a_b', '1');
  sections = set(sections, 'all', 'boot_partition', String(primary));
  sections = set(sections, 'tryboot', 'boot_partition', String(trial));
  return { sections };
}

export function renderAutoboot(a: Autoboot): string {
  return a.sections.map((s) => [...(s.name === '' ? [] : [`[${s.name}]`]), ...s.lines].join('\n')).join('\n') + '\n';
}

/**
 * Overwrites `path` in place (one small write, fsync), reads it back and compares; tries twice. FAT has
 * no atomic rename, so the file stays under one sector and is checked rather than trusted.
 */
export async function writeAutoboot(path: string, text: string): Promise<void> {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > AUTOBOOT_MAX_BYTES) {
    throw new SlotError('bootloader-error', `autoboot.txt would be ${bytes.length} bytes; the firmware reads only ${AUTOBOOT_MAX_BYTES} — remove extra lines from ${path}`);
  }
  let lastError = '';
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      const handle = await open(path, 'r+').catch(async (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return open(path, 'w');
        throw err;
      });
      try {
        await handle.write(bytes, 0, bytes.length, 0);
        await handle.truncate(bytes.length);
        await handle.sync();
      } finally {
        await handle.close();
      }
      const back = await readFile(path);
      if (back.equals(bytes)) return;
      lastError = 'read back different bytes';
    } catch (err) {
      lastError = errorMessage(err);
    }
  }
  throw new SlotError('bootloader-error', `could not rewrite ${path} (${lastError}); check the boot partition is mounted read-write and healthy`);
}

/** Reads a device-tree property holding one 4-byte big-endian integer; undefined when absent. */
export async function readDtInteger(path: string): Promise<number | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SlotError('bootloader-error', `cannot read ${path}: ${errorMessage(err)}`);
  }
  if (bytes.length !== 4) throw new SlotError('bootloader-error', `${path} has ${bytes.length} bytes, expected a 4-byte big-endian integer`);
  return bytes.readUInt32BE(0);
}
