/**
 * `fleet agent ...` subcommands: start the daemon, validate a config, show the persisted state.
 * Thin shell; heavy work lives in the Agent.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '../protocol/errors.js';
import { loadAgentConfig } from './config.js';
import { FileStateStore } from './state-store.js';
import { reportedState } from './agent-state.js';
import { registerAgentToolCommands } from './cli-tools.js';
import { startAgent } from './agent-process.js';

export function registerAgentCommands(program: Command): void {
  const agent = program.command('agent').description('the device daemon: verified A/B updates and telemetry');

  agent
    .command('start')
    .description('run the agent until SIGTERM/SIGINT')
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .action(async (opts: { config: string }) => {
      const config = await loadAgentConfig(opts.config);
      const { default: pino } = await import('pino');
      const { runDaemon } = await import('../protocol/daemon.js');
      const logger = pino({ level: config.logLevel });
      // Losing the broker is never fatal (the session reconnects by itself); only a signal, or a
      // local failure the agent cannot get past, ends the process.
      await runDaemon({
        logger,
        start: async (control) => {
          const stop = await startAgent(config, logger, control);
          logger.info({ deviceId: config.deviceId, broker: config.broker.url }, 'agent started');
          return stop;
        },
      });
    });

  agent
    .command('validate-config')
    .description('check an agent config and print it with defaults filled in')
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .option('--json', 'print the resolved config as JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const config = await loadAgentConfig(opts.config);
      if (opts.json) console.log(JSON.stringify({ ...config, broker: { ...config.broker, password: config.broker.password ? '***' : undefined } }, null, 2));
      else console.log(`${opts.config} is valid: device ${config.deviceId} (${config.hardwareModel}), broker ${config.broker.url}, slots ${config.slots.kind}`);
    });

  registerAgentToolCommands(agent);

  agent
    .command('status')
    .description("show the agent's persisted update state")
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .option('--json', 'print the raw state as JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      const config = await loadAgentConfig(opts.config);
      const state = await new FileStateStore(join(config.dataDir, 'state.json')).load();
      if (!state) throw new FleetError('no-state', `no agent state in ${config.dataDir}; the agent has not run on this device yet`);
      if (opts.json) {
        console.log(JSON.stringify(state, null, 2));
        return;
      }
      const job = state.job;
      console.log(`device     ${config.deviceId}`);
      console.log(`booted     slot ${state.booted} (A: ${state.slotVersions.A ?? '-'}, B: ${state.slotVersions.B ?? '-'})`);
      console.log(`floor      securityVersion ${state.securityFloor}`);
      console.log(`counters   reboots ${state.counters.reboots}, restarts ${state.counters.agentRestarts}, crashes ${state.counters.crashes}, errors ${state.counters.errors}`);
      if (job) {
        console.log(`update     ${job.deploymentId}: ${reportedState(job)} ${job.fromVersion} -> ${job.toVersion}${job.reason ? ` (${job.reason})` : ''}`);
        if (job.detail) console.log(`           ${job.detail}`);
      } else {
        console.log('update     none');
      }
    });
}
