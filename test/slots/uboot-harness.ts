/**
 * Conformance harness for the `uboot` backend: a real file-backed U-Boot environment (mkenvimage,
 * fw_printenv/fw_setenv), partition files, and UbootBootloaderSim playing U-Boot.
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createUbootBackend } from '../../agent/slots/slot-backend-uboot.js';
import type { UbootBackendConfig } from '../../agent/slots/slot-backend-uboot.js';
import type { z } from 'zod';
import type { UbootSlotBackend, UbootBackendConfigSchema } from '../../agent/slots/slot-backend-uboot.js';
import type { SlotName } from '../../protocol/update-state.js';
import type { SlotDevice, SlotHarness } from './conformance.js';
import type { RecordingRunner } from './helpers.js';
import { TEST_REBOOT, hasTool, makeSlotFiles, makeUbootEnv, recordingRunner } from './helpers.js';
import { UbootBootloaderSim } from './uboot-bootloader-sim.js';

export interface UbootVariant {
  scheme: UbootBackendConfig['scheme'];
  redundant?: boolean;
  /** Use kernel command line markers to learn the booted slot (always for boot-order). */
  cmdline?: boolean;
  bootlimit?: number;
}

export interface UbootTestDevice extends SlotDevice {
  backend(): UbootSlotBackend;
  config: z.input<typeof UbootBackendConfigSchema>;
  recorder: RecordingRunner;
  sim: UbootBootloaderSim;
  envImages: string[];
}

export const INITIAL_ENV = {
  bootcount: { bootcmd: 'run mender_setup; run bootcmd_mmc', mender_boot_part: '2', mender_boot_part_hex: '2', upgrade_available: '0', bootcount: '0', bootlimit: '1' },
  'boot-order': { bootcmd: 'run rauc_boot', BOOT_ORDER: 'A B', BOOT_A_LEFT: '3', BOOT_B_LEFT: '3' },
} as const;

export async function createUbootDevice(dir: string, initial: Buffer, variant: UbootVariant): Promise<UbootTestDevice> {
  const env = await makeUbootEnv(dir, { ...INITIAL_ENV[variant.scheme], ...(variant.bootlimit ? { bootlimit: String(variant.bootlimit) } : {}) }, variant.redundant ?? false);
  const devices = await makeSlotFiles(dir, initial);
  const cmdlinePath = join(dir, 'cmdline');
  const words: Record<SlotName, string> =
    variant.scheme === 'boot-order' ? { A: 'rauc.slot=A', B: 'rauc.slot=B' } : { A: `root=${devices.A}`, B: `root=${devices.B}` };
  const recorder = recordingRunner();
  const config: z.input<typeof UbootBackendConfigSchema> = {
    kind: 'uboot',
    scheme: variant.scheme,
    fwEnvConfig: env.config,
    slots: {
      A: { device: devices.A, ...(variant.cmdline ? { cmdline: words.A } : {}) },
      B: { device: devices.B, ...(variant.cmdline ? { cmdline: words.B } : {}) },
    },
    bootcount: { bootlimit: variant.bootlimit ?? 1 },
    procCmdline: cmdlinePath,
    rebootCommand: [TEST_REBOOT],
  };
  const sim = new UbootBootloaderSim({ scheme: variant.scheme, fwEnvConfig: env.config, cmdlinePath, cmdline: words, partitions: { A: '2', B: '3' }, attempts: 3 });
  await sim.boot();
  return {
    config,
    recorder,
    sim,
    envImages: env.images,
    backend: () => createUbootBackend(config, { runner: recorder.runner }),
    async boot() {
      recorder.takeReboot(); // U-Boot boots the same way after a reboot or a power loss
      await sim.boot();
    },
    async readSlot(slot, size) {
      return (await readFile(devices[slot])).subarray(0, size);
    },
    async tearWrite(slot, partial) {
      const h = await open(devices[slot], 'r+');
      await h.write(partial, 0, partial.length, 0);
      await h.close();
    },
    trialBoots: variant.scheme === 'bootcount' ? (variant.bootlimit ?? 1) + 1 : 2,
    dispose: () => Promise.resolve(),
  };
}

export function ubootHarness(name: string, variant: UbootVariant): SlotHarness {
  const missing = ['fw_printenv', 'fw_setenv', 'mkenvimage'].filter((t) => !hasTool(t));
  return {
    name,
    skipReason: missing.length ? `missing ${missing.join(', ')} (apt-get install libubootenv-tool u-boot-tools)` : undefined,
    create: async (dir, initial) => createUbootDevice(dir, await readFile(initial.path), variant),
  };
}
