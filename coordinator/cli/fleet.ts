#!/usr/bin/env node
/**
 * The `fleet` executable: the one composition root. Each domain registers its own subcommands; heavy
 * modules (broker, database) are imported inside command actions, so `fleet agent start` on a device
 * loads only what the agent needs.
 */
import { Command } from 'commander';
import { FleetError } from '../../protocol/errors.js';
import { packageVersion } from '../../firmware/package-version.js';
import { registerFirmwareCommands } from '../../firmware/cli.js';
import { registerAgentCommands } from '../../agent/cli.js';
import { registerCoordinatorCommands } from './coordinator-cli.js';
import { registerCanaryCommands, registerDecisionCommands, registerFlagCommands } from '../canary/register-cli.js';
import { registerSimulatorCommands } from '../../simulator/cli.js';

const program = new Command('fleet')
  .description('safe, signed, wave-based firmware rollouts for IoT fleets')
  .version(packageVersion(import.meta.url))
  .showHelpAfterError('(run with --help for usage)');

registerFirmwareCommands(program);
registerCoordinatorCommands(program);
registerAgentCommands(program);
registerCanaryCommands(program);
registerFlagCommands(program);
registerSimulatorCommands(program);

// Last: adds `decisions` to the `deploy` group registered above (or creates the group).
registerDecisionCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof FleetError) {
    console.error(`error [${err.code}]: ${err.message}`);
    process.exitCode = 2;
  } else {
    throw err;
  }
}
