/**
 * Reads and writes the U-Boot environment from Linux with libubootenv's fw_printenv / fw_setenv.
 * Every change of one step goes in ONE `fw_setenv -s -` batch (one CRC-protected write, and with a
 * redundant environment one flip of the active copy), so a power loss leaves either the old or the new
 * environment, never half of a step. I/O through the injected CommandRunner.
 */
import type { CommandRunner } from './command-runner.js';
import { describeFailure } from './command-runner.js';
import { SlotError } from './slot-backend.js';

/** Variable name → value; an empty value deletes the variable. */
export type UbootVars = Record<string, string>;

export interface UbootEnvOptions {
  runner: CommandRunner;
  /** fw_env.config describing where the environment lives. */
  fwEnvConfig: string;
  /** Default `fw_printenv`. */
  fwPrintenv?: string;
  /** Default `fw_setenv`. */
  fwSetenv?: string;
  /** Per command. Default 30 000 ms. */
  timeoutMs?: number;
}

const NAME = /^[A-Za-z0-9_.-]+$/;

/** Parses `fw_printenv` output (`name=value` per line; values may contain `=`). Pure. */
export function parsePrintenv(text: string): UbootVars {
  const vars: UbootVars = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    vars[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return vars;
}

/** Renders a `fw_setenv -s` script; rejects names and values that would break the line format. Pure. */
export function renderScript(vars: UbootVars): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(vars)) {
    if (!NAME.test(name)) throw new SlotError('bootloader-error', `refusing to set U-Boot variable with name ${JSON.stringify(name)}`);
    if (/[\n\r]/.test(value)) throw new SlotError('bootloader-error', `refusing a multi-line value for U-Boot variable ${name}`);
    // libubootenv: `name=value` sets, `name=` deletes.
    lines.push(`${name}=${value}`);
  }
  return `${lines.join('\n')}\n`;
}

export class UbootEnv {
  constructor(private readonly options: UbootEnvOptions) {}

  /**
   * Reads the whole environment. A bad CRC (no valid copy) is a `bootloader-error` telling the operator
   * to repair it; we never fall back to a default environment, which would silently reset the boot slot.
   */
  async read(): Promise<UbootVars> {
    const file = this.options.fwPrintenv ?? 'fw_printenv';
    const args = ['-c', this.options.fwEnvConfig];
    const result = await this.options.runner(file, args, { timeoutMs: this.options.timeoutMs ?? 30_000 });
    if (result.code !== 0) {
      throw new SlotError(
        'bootloader-error',
        `cannot read the U-Boot environment (${describeFailure(file, args, result)}); it may be corrupt (bad CRC) or ${this.options.fwEnvConfig} may point at the wrong place — fix it from the U-Boot console (env default -a; saveenv) or reflash; nothing was written`,
      );
    }
    return parsePrintenv(result.stdout);
  }

  /**
   * Writes `vars` in one batch, then reads back and checks every value. Reads first, so a corrupt
   * environment is reported and never overwritten with fw_setenv's defaults.
   */
  async write(vars: UbootVars): Promise<void> {
    if (Object.keys(vars).length === 0) return;
    const script = renderScript(vars);
    await this.read();
    const file = this.options.fwSetenv ?? 'fw_setenv';
    const args = ['-c', this.options.fwEnvConfig, '-s', '-'];
    const result = await this.options.runner(file, args, { stdin: script, timeoutMs: this.options.timeoutMs ?? 30_000 });
    if (result.code !== 0) {
      throw new SlotError('bootloader-error', `cannot write the U-Boot environment (${describeFailure(file, args, result)})`);
    }
    const after = await this.read();
    const wrong = Object.entries(vars).filter(([name, value]) => (after[name] ?? '') !== value);
    if (wrong.length > 0) {
      throw new SlotError(
        'bootloader-error',
        `the U-Boot environment did not keep ${wrong.map(([n]) => n).join(', ')} after fw_setenv; check the storage and ${this.options.fwEnvConfig}`,
      );
    }
  }
}
