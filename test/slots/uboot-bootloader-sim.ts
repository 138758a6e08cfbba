/**
 * U-Boot's side of the A/B dance, simulated on the same file-backed environment the backend writes
 * (read and written with the real fw_printenv / fw_setenv): counts boots, switches at the limit, and
 * "starts the kernel" by writing the kernel command line the backend reads.
 */
import { writeFile } from 'node:fs/promises';
import type { SlotName } from '../../protocol/update-state.js';
import { otherSlot } from '../../protocol/update-state.js';
import { spawnRunner } from '../../agent/slots/command-runner.js';
import { UbootEnv } from '../../agent/slots/uboot-env.js';
import type { UbootVars } from '../../agent/slots/uboot-env.js';

export interface UbootSimOptions {
  scheme: 'bootcount' | 'boot-order';
  fwEnvConfig: string;
  cmdlinePath: string;
  /** Kernel command line words per slot (root=…, rauc.slot=…). */
  cmdline: Record<SlotName, string>;
  /** bootcount: partition variable values. */
  partitions: Record<SlotName, string>;
  /** boot-order: attempts restored when no slot has any left (RAUC's script). */
  attempts: number;
}

export class UbootBootloaderSim {
  readonly env: UbootEnv;
  /** Every boot, in order: the slot started. */
  readonly boots: SlotName[] = [];

  constructor(private readonly o: UbootSimOptions) {
    this.env = new UbootEnv({ runner: spawnRunner, fwEnvConfig: o.fwEnvConfig });
  }

  /** One power-on: run the boot script, save the environment as U-Boot would, start the kernel. */
  async boot(): Promise<SlotName> {
    const env = await this.env.read();
    const slot = this.o.scheme === 'bootcount' ? await this.bootcount(env) : await this.bootOrder(env);
    this.boots.push(slot);
    await writeFile(this.o.cmdlinePath, `console=ttyS0 ${this.o.cmdline[slot]} rootwait\n`);
    return slot;
  }

  private slotOf(value: string | undefined): SlotName {
    return value === this.o.partitions.B ? 'B' : 'A';
  }

  /** CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV, with Mender's altbootcmd. */
  private async bootcount(env: UbootVars): Promise<SlotName> {
    let slot = this.slotOf(env.mender_boot_part);
    if (env.upgrade_available === '1') {
      const count = Number(env.bootcount ?? '0') + 1;
      const limit = Number(env.bootlimit ?? '0');
      if (limit > 0 && count > limit) {
        slot = otherSlot(slot); // altbootcmd: switch partition, stop counting, saveenv
        await this.env.write({ mender_boot_part: this.o.partitions[slot], mender_boot_part_hex: Number(this.o.partitions[slot]).toString(16), upgrade_available: '0', bootcount: String(count) });
      } else {
        await this.env.write({ bootcount: String(count) });
      }
    }
    return slot;
  }

  /** RAUC's documented U-Boot script: first slot in BOOT_ORDER with attempts left, decremented. */
  private async bootOrder(env: UbootVars): Promise<SlotName> {
    const order = (env.BOOT_ORDER ?? 'A B').split(/\s+/).filter((n): n is SlotName => n === 'A' || n === 'B');
    for (const slot of order) {
      const left = Number(env[`BOOT_${slot}_LEFT`] ?? '0');
      if (left > 0) {
        await this.env.write({ [`BOOT_${slot}_LEFT`]: String(left - 1) });
        return slot;
      }
    }
    // No attempts anywhere: the script resets the counters and boots the first slot again.
    const first = order[0] ?? 'A';
    await this.env.write({ BOOT_A_LEFT: String(this.o.attempts), BOOT_B_LEFT: String(this.o.attempts), [`BOOT_${first}_LEFT`]: String(this.o.attempts - 1) });
    return first;
  }
}
