#!/usr/bin/env node
/**
 * The `fleet` executable: the one composition root. Each domain registers its own subcommands; heavy
 * modules (broker, database) are imported inside command actions, so `fleet agent start` on a device
 * loads only what the agent needs.
 */
import { Command } from 'commander';
import { packageVersion } from '@fleet/runtime/package-version';
import { registerFirmwareCommands } from '@fleet/firmware/cli';
import { registerAgentCommands } from '@fleet/agent/cli';
import { describeCliError, exitCodeOf } from '@fleet/runtime/cli-errors';
import { devEnroller, registerCanaryCommands, registerCoordinatorCommands, registerDecisionCommands, registerFlagCommands } from '@fleet/coordinator/cli';
import { registerSimulatorCommands } from '@fleet/simulator/cli';

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
