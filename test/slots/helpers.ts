/**
 * Test helpers shared by the slot backend tests: a runner that records reboot requests instead of
 * rebooting, U-Boot environment images made with the real mkenvimage, and slot partition files.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandOptions, CommandResult, CommandRunner } from '../../agent/slots/command-runner.js';
import { spawnRunner } from '../../agent/slots/command-runner.js';
import type { SlotName } from '../../protocol/update-state.js';

/** argv[0] the tests configure as the reboot command; the recorder intercepts it. */
export const TEST_REBOOT = 'fleet-test-reboot';

export interface RecordingRunner {
  runner: CommandRunner;
  /** Every command run, in order (reboots included). */
  calls: { file: string; args: string[]; options: CommandOptions | undefined }[];
  /** Takes the pending reboot request (its arguments), if any. */
  takeReboot(): string[] | undefined;
}

/** Runs real processes, except `fleet-test-reboot …`, which is recorded for the simulated bootloader. */
export function recordingRunner(inner: CommandRunner = spawnRunner): RecordingRunner {
  let pending: string[] | undefined;
  const calls: RecordingRunner['calls'] = [];
  return {
    calls,
    runner: async (file, args, options): Promise<CommandResult> => {
      calls.push({ file, args: [...args], options });
      if (file === TEST_REBOOT) {
        pending = [...args];
        return { code: 0, stdout: '', stderr: '' };
      }
      return inner(file, args, options);
    },
    takeReboot() {
      const r = pending;
      pending = undefined;
      return r;
    },
  };
}

export function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface EnvFiles {
  /** fw_env.config path. */
  config: string;
  /** The environment image(s). */
  images: string[];
}

/** Makes a file-backed U-Boot environment with mkenvimage (0x4000 bytes; two copies when redundant). */
export async function makeUbootEnv(dir: string, vars: Record<string, string>, redundant = false): Promise<EnvFiles> {
  const txt = join(dir, 'env.txt');
  await writeFile(txt, Object.entries(vars).map(([k, v]) => `${k}=${v}\n`).join(''));
  const first = join(dir, 'uboot.env');
  execFileSync('mkenvimage', [...(redundant ? ['-r'] : []), '-s', '0x4000', '-o', first, txt]);
  const images = [first];
  if (redundant) {
    const second = join(dir, 'uboot-redund.env');
    await copyFile(first, second);
    images.push(second);
  }
  const config = join(dir, 'fw_env.config');
  await writeFile(config, images.map((p) => `${p} 0x0 0x4000\n`).join(''));
  return { config, images };
}

/** Two partition files (bigger than any test image) that both start with `initial`. */
export async function makeSlotFiles(dir: string, initial: Buffer, size = 128 * 1024): Promise<Record<SlotName, string>> {
  const devices = { A: join(dir, 'slot-a.part'), B: join(dir, 'slot-b.part') };
  for (const path of Object.values(devices)) {
    const buf = Buffer.alloc(size);
    initial.copy(buf);
    await writeFile(path, buf);
  }
  return devices;
}
