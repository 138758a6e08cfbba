/**
 * `fleet agent ...` subcommands: start the daemon, validate a config, show the persisted state, and
 * `dev` (a provisioned development agent in one command, when the executable supplies an enroller).
 * Thin shell; heavy work lives in the Agent.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, FleetError } from '@fleet/protocol/errors';
import { parseDuration } from '@fleet/firmware/duration';
import { UpdateStateSchema } from '@fleet/protocol/update-state';
import { loadAgentConfig } from './config.js';
import { FileStateStore } from './state-store.js';
import { reportedState } from './agent-state.js';
import { registerAgentToolCommands } from './cli-tools.js';
import { registerAgentDevCommand, type DevEnroller } from './dev-agent.js';
import { checkAgentEnvironment } from './config-check.js';
import { startAgent } from './agent-process.js';

export interface AgentCommandDeps {
  /** Provisions devices for `fleet agent dev` (the coordinator side, wired by the `fleet` executable). */
  devEnroller?: DevEnroller;
}

/** `fleet agent ...`: the agent's commands as a group of the `fleet` executable. */
export function registerAgentCommands(program: Command, deps: AgentCommandDeps = {}): void {
  addAgentCommands(program.command('agent').description('the device daemon: verified A/B updates and telemetry'), deps);
}

/** Adds the agent's commands (`start`, `validate-config`, `status`, the tools) to `agent`: a group, or the `fleet-agent` program itself. */
export function addAgentCommands(agent: Command, deps: AgentCommandDeps = {}): void {

  agent
    .command('start')
    .description('run the agent until SIGTERM/SIGINT')
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .action((opts: { config: string }) => runAgent(opts.config));

  if (deps.devEnroller) registerAgentDevCommand(agent, deps.devEnroller, runAgent);

  agent
    .command('validate-config')
    .description('check an agent config (its fields, and that this machine can run it: files, trust store, directories, programs)')
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .option('--syntax-only', 'check the fields only, not this machine (a template on a build host)')
    .option('--json', 'print the resolved config as JSON')
    .action(async (opts: { config: string; syntaxOnly?: boolean; json?: boolean }) => {
      const config = await loadAgentConfig(opts.config);
      const problems = opts.syntaxOnly ? [] : await checkAgentEnvironment(config);
      if (problems.length) {
        throw new ConfigError(`${opts.config} is well-formed, but this machine cannot run it (--syntax-only checks the fields alone):\n  ${problems.join('\n  ')}`);
      }
      if (opts.json) console.log(JSON.stringify({ ...config, broker: { ...config.broker, password: config.broker.password ? '***' : undefined } }, null, 2));
      else console.log(`${opts.config} is valid: device ${config.deviceId} (${config.hardwareModel}), broker ${[config.broker.url].flat().join(", ")}, slots ${config.slots.kind}`);
    });

  registerAgentToolCommands(agent);

  agent
    .command('status')
    .description("show the agent's persisted update state")
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .option('--wait <state>', 'first wait until the update reaches this state (e.g. committed, rolled-back)')
    .option('--timeout <duration>', 'give up waiting after this long', '60s')
    .option('--json', 'print the raw state as JSON')
    .action(async (opts: { config: string; wait?: string; timeout: string; json?: boolean }) => {
      const config = await loadAgentConfig(opts.config);
      const store = new FileStateStore(join(config.dataDir, 'state.json'));
      let state = await store.load();
      if (opts.wait !== undefined) {
        if (!UpdateStateSchema.safeParse(opts.wait).success) throw new ConfigError(`--wait ${opts.wait}: give an update state, one of ${UpdateStateSchema.options.join(', ')}`);
        // The daemon writes state.json atomically at every step: poll it until the update gets there.
        const deadline = Date.now() + parseDuration(opts.timeout);
        while (!(state?.job && reportedState(state.job) === opts.wait)) {
          if (Date.now() >= deadline) {
            const now = state?.job ? `${state.job.deploymentId}: ${reportedState(state.job)}` : 'no update';
            throw new FleetError('timeout', `the agent's update is not ${opts.wait} after ${opts.timeout} (now ${now}); is the agent running? (\`fleet agent start -c ${opts.config}\`)`);
          }
          await new Promise((r) => setTimeout(r, 250));
          state = await store.load();
        }
      }
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

/** Runs the agent daemon from a config file until SIGTERM/SIGINT (`fleet agent start`, `fleet agent dev`). */
export async function runAgent(configPath: string): Promise<void> {
  const config = await loadAgentConfig(configPath);
  const { default: pino } = await import('pino');
  const { runDaemon } = await import('@fleet/runtime/daemon');
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
}
