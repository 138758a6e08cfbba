/**
 * Registers the coordinator's operator commands: `fleet coordinator`, `fleet deploy`, `fleet devices`,
 * `fleet users`, `fleet audit`, `fleet webhooks`, `fleet broker`, and `upload`/`list` inside the existing
 * `fleet firmware` group (created by firmware/cli.ts, so call this after registerFirmwareCommands).
 * Heavy modules load inside actions only.
 */
import type { Command } from 'commander';
import { registerCoordinatorServiceCommands } from './coordinator-commands.js';
import { registerDeployCommands } from './deploy-commands.js';
import { registerDeviceCommands } from './device-commands.js';
import { addFirmwareAdminCommands } from './firmware-commands.js';
import { registerUserCommands } from './user-commands.js';
import { registerWebhookCommands } from '../webhooks/cli.js';
import { registerBrokerCommands } from './broker-commands.js';

export function registerCoordinatorCommands(program: Command): void {
  // Without positional options the program's own `--version` swallows the subcommands' `--version
  // <semver>` (`fleet firmware upload|sign --version 1.2.0` printed the CLI's version instead).
  program.enablePositionalOptions();
  registerCoordinatorServiceCommands(program);
  registerDeployCommands(program);
  registerDeviceCommands(program);
  registerUserCommands(program);
  registerWebhookCommands(program);
  registerBrokerCommands(program);
  const firmware = program.commands.find((c) => c.name() === 'firmware') ?? program.command('firmware').description('firmware artifacts');
  addFirmwareAdminCommands(firmware);
}
