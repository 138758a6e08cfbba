/**
 * Conformance harness for the `tryboot` backend: a boot folder with autoboot.txt, a fake device tree,
 * partition files, a /run folder that every boot clears, and a simulated Raspberry Pi firmware that
 * honours `reboot '0 tryboot'` exactly once.
 */
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import { createTrybootBackend } from '../../agent/slots/slot-backend-tryboot.js';
import type { TrybootSlotBackend, TrybootBackendConfigSchema } from '../../agent/slots/slot-backend-tryboot.js';
import type { SlotDevice } from './conformance.js';
import type { RecordingRunner } from './helpers.js';
import { TEST_REBOOT, makeSlotFiles, recordingRunner } from './helpers.js';

export const INITIAL_AUTOBOOT = '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n';

export interface TrybootTestDevice extends SlotDevice {
  backend(): TrybootSlotBackend;
  config: z.input<typeof TrybootBackendConfigSchema>;
  recorder: RecordingRunner;
  autobootPath: string;
  dtDir: string;
  /** Every boot: partition and whether it was a tryboot. */
  boots: { partition: number; tryboot: boolean }[];
}

/** The firmware's reading of autoboot.txt (independent of the agent's parser). */
function firmwarePartition(text: string, tryboot: boolean): number {
  let section = '';
  let all = 0;
  let trial = 0;
  for (const line of text.split('\n').map((l) => l.trim())) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header) section = header[1]!;
    const m = /^boot_partition=(\d+)$/.exec(line);
    if (m && section === 'all') all = Number(m[1]);
    if (m && section === 'tryboot') trial = Number(m[1]);
  }
  return tryboot && trial ? trial : all;
}

const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

export async function createTrybootDevice(dir: string, initial: Buffer): Promise<TrybootTestDevice> {
  const bootDir = join(dir, 'boot');
  const dtRoot = join(dir, 'device-tree');
  const dtDir = join(dtRoot, 'chosen', 'bootloader');
  const runDir = join(dir, 'run');
  await mkdir(bootDir, { recursive: true });
  await mkdir(dtDir, { recursive: true });
  const autobootPath = join(bootDir, 'autoboot.txt');
  await writeFile(autobootPath, INITIAL_AUTOBOOT);
  const devices = await makeSlotFiles(dir, initial);
  const recorder = recordingRunner();
  const config: z.input<typeof TrybootBackendConfigSchema> = {
    kind: 'tryboot',
    bootDir,
    deviceTreeRoot: dtRoot,
    slots: { A: { device: devices.A, partition: 2 }, B: { device: devices.B, partition: 3 } },
    trybootRebootCommand: [TEST_REBOOT, '0 tryboot'],
    rebootCommand: [TEST_REBOOT],
    armedMarker: join(runDir, 'fleet', 'tryboot-armed'),
  };
  const boots: TrybootTestDevice['boots'] = [];
  const boot = async (): Promise<void> => {
    const request = recorder.takeReboot();
    // One argument, "0 tryboot", exactly as the kernel's reboot syscall receives it.
    const tryboot = request?.length === 1 && request[0] === '0 tryboot';
    const partition = firmwarePartition(await readFile(autobootPath, 'utf8'), tryboot);
    await rm(runDir, { recursive: true, force: true }); // tmpfs
    await writeFile(join(dtDir, 'partition'), be32(partition));
    await writeFile(join(dtDir, 'tryboot'), be32(tryboot ? 1 : 0));
    boots.push({ partition, tryboot });
  };
  await boot();
  return {
    config,
    recorder,
    autobootPath,
    dtDir,
    boots,
    backend: () => createTrybootBackend(config, { runner: recorder.runner }),
    boot,
    async readSlot(slot, size) {
      return (await readFile(devices[slot])).subarray(0, size);
    },
    async tearWrite(slot, partial) {
      const h = await open(devices[slot], 'r+');
      await h.write(partial, 0, partial.length, 0);
      await h.close();
    },
    trialBoots: 1,
    dispose: () => Promise.resolve(),
  };
}
