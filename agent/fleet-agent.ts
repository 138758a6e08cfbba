#!/usr/bin/env node
/**
 * The `fleet-agent` executable: the agent's commands alone (`fleet-agent start -c agent.json` is
 * `fleet agent start -c agent.json`), for a device that installs @fleet/agent and nothing of the
 * coordinator. Failed commands print one line, as `fleet` does.
 */
import { Command } from 'commander';
import { packageVersion } from '@fleet/runtime/package-version';
import { describeCliError, exitCodeOf } from '@fleet/runtime/cli-errors';
import { addAgentCommands } from './cli.js';

const program = new Command('fleet-agent')
  .description('the fleet device daemon: verified A/B firmware updates and telemetry')
  .version(packageVersion(import.meta.url))
  .showHelpAfterError('(run with --help for usage)');

addAgentCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  console.error(describeCliError(err, Boolean(process.env['FLEET_DEBUG'])));
  process.exitCode = exitCodeOf(err);
}
