import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeFailure, spawnRunner } from '../../agent/slots/command-runner.js';
import { sha256Prefix, writeAndVerify } from '../../agent/slots/partition-writer.js';
import { SlotError } from '../../agent/slots/slot-backend.js';
import { firmware, plainImage } from './conformance.js';

describe('spawnRunner', () => {
  it('passes stdin and environment, captures output and the exit code', async () => {
    const r = await spawnRunner('sh', ['-c', 'cat; echo "$FLEET_X" >&2; exit 3'], { stdin: 'hello', env: { FLEET_X: 'y' } });
    expect(r).toEqual({ code: 3, stdout: 'hello', stderr: 'y\n' });
  });

  it('streams stdout to onOutput', async () => {
    const chunks: string[] = [];
    await spawnRunner('sh', ['-c', 'echo " 10% a"; echo "100% b"'], { onOutput: (c) => chunks.push(c) });
    expect(chunks.join('')).toBe(' 10% a\n100% b\n');
  });

  it('kills a hung process at the timeout', async () => {
    const started = Date.now();
    const r = await spawnRunner('sleep', ['30'], { timeoutMs: 200 });
    expect(r.code).toBe(-1);
    expect(r.stderr).toMatch(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('reports a missing program as a failure, not a crash', async () => {
    const r = await spawnRunner('/nonexistent/fleet-tool', []);
    expect(r.code).toBe(-1);
    expect(describeFailure('/nonexistent/fleet-tool', [], r)).toMatch(/ENOENT/);
  });
});

describe('writeAndVerify', () => {
  it('writes from offset 0 without truncating the partition, and reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-pw-'));
    try {
      const device = join(dir, 'part');
      await writeFile(device, Buffer.alloc(200_000, 0xaa));
      const image = await plainImage(dir, 'img', firmware('x', 150_000));
      await writeAndVerify(device, image);
      expect(await sha256Prefix(device, image.size)).toBe(image.sha256);
      expect(await sha256Prefix(device, 200_000)).not.toBe(image.sha256); // the tail is still there
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes a real block device (a loop device) and reads it back past the page cache', async (ctx) => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-pw-'));
    const backing = join(dir, 'disk');
    await writeFile(backing, Buffer.alloc(1024 * 1024));
    const attach = process.getuid?.() === 0 ? await spawnRunner('losetup', ['-f', '--show', backing]) : undefined;
    if (!attach || attach.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      ctx.skip(`no loop device for this test (${attach ? attach.stderr.trim() : 'needs root'})`);
      return;
    }
    const loop = attach.stdout.trim();
    try {
      const calls: string[][] = [];
      const image = await plainImage(dir, 'img', firmware('x', 300_000));
      await writeAndVerify(loop, image, async (file, args, options) => {
        calls.push([file, ...args]);
        return spawnRunner(file, args, options);
      });
      expect(calls).toEqual([['blockdev', '--flushbufs', loop]]);
      expect(await sha256Prefix(backing, image.size)).toBe(image.sha256);
    } finally {
      await spawnRunner('losetup', ['-d', loop]);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails an image shorter than its manifest size as write-failed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-pw-'));
    try {
      const image = await plainImage(dir, 'img', firmware('x', 1000));
      const err: unknown = await writeAndVerify(join(dir, 'part'), { ...image, size: 2000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SlotError);
      expect((err as SlotError).code).toBe('write-failed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
