#!/usr/bin/env node
/**
 * The `fleet` executable: the one composition root. Each domain registers its own subcommands; heavy
 * modules (broker, database) are imported inside command actions, so `fleet agent start` on a device
 * loads only what the agent needs.
 */
import { Command } from 'commander';
import { packageVersion } from '../../firmware/package-version.js';
import { registerFirmwareCommands } from '../../firmware/cli.js';
import { registerAgentCommands } from '../../agent/cli.js';
import { registerCoordinatorCommands } from './coordinator-cli.js';
import { describeCliError, exitCodeOf } from './cli-errors.js';
import { devEnroller } from './dev-enroller.js';
import { registerCanaryCommands, registerDecisionCommands, registerFlagCommands } from '../canary/register-cli.js';
import { registerSimulatorCommands } from '../../simulator/cli.js';

const program = new Command('fleet')
  .description('safe, signed, wave-based firmware rollouts for IoT fleets')
  .version(packageVersion(import.meta.url))
  .showHelpAfterError('(run with --help for usage)');

registerFirmwareCommands(program);
registerCoordinatorCommands(program);
// `fleet agent dev` provisions through the coordinator's admin API: wired here, the one place that knows both.
registerAgentCommands(program, { devEnroller });
registerCanaryCommands(program);
registerFlagCommands(program);
registerSimulatorCommands(program);

// Last: adds `decisions` to the `deploy` group registered above (or creates the group).
registerDecisionCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // One line an operator can act on, never a stack trace (FLEET_DEBUG=1 adds it).
  console.error(describeCliError(err, Boolean(process.env['FLEET_DEBUG'])));
  process.exitCode = exitCodeOf(err);
}
