/**
 * `fleet agent topics | offer | command`: drive one agent through a plain MQTT broker (mosquitto, or
 * the coordinator's) without a coordinator — what the coordinator does for a wave, by hand. Thin shell.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ConfigError } from '@fleet/protocol/errors';
import { bucketOf } from '@fleet/protocol/bucket';
import { deviceSubscriptions, deviceTopic, rolloutTopic } from '@fleet/protocol/topics';
import { EnvelopeSchema, CommandActionSchema } from '@fleet/protocol/signed';
import { encodeMessage, parsePayload } from '@fleet/protocol/parse';
import { DeploymentIdSchema } from '@fleet/protocol/ids';
import { brokerUrls, loadAgentConfig, type AgentConfig } from './config.js';
import { definedProps } from '@fleet/firmware/defined-props';

interface BrokerOpts {
  config: string;
  broker?: string;
  username?: string;
  password?: string;
}

async function publish(cfg: AgentConfig, opts: BrokerOpts, topic: string, payload: Buffer, retain: boolean): Promise<void> {
  const { default: mqtt } = await import('mqtt');
  const client = await mqtt.connectAsync(opts.broker ?? brokerUrls(cfg.broker, cfg.deviceId)[0]!, {
    clientId: `fleet-cli-${randomUUID().slice(0, 8)}`,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...definedProps({ username: opts.username, password: opts.password }),
    ...(cfg.broker.caFile !== undefined ? { ca: await readFile(cfg.broker.caFile) } : {}),
  });
  try {
    await client.publishAsync(topic, payload, { qos: 1, retain });
  } finally {
    await client.endAsync();
  }
}

const brokerOptions = (c: Command): Command =>
  c
    .requiredOption('-c, --config <file>', "the device's agent config (agent.json)")
    .option('--broker <url>', 'broker URL (default: the one in the config)')
    .option('--username <name>', 'broker user allowed to publish coordinator topics')
    .option('--password <secret>', 'broker password');

export function registerAgentToolCommands(agent: Command): void {
  agent
    .command('topics')
    .description("print the device's bucket and the topics it subscribes to")
    .requiredOption('-c, --config <file>', 'agent config (agent.json)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { config: string; json?: boolean }) => {
      const cfg = await loadAgentConfig(opts.config);
      const bucket = bucketOf(cfg.deviceId);
      const out = { deviceId: cfg.deviceId, bucket, rollout: rolloutTopic(cfg.hardwareModel, bucket), subscriptions: deviceSubscriptions(cfg.deviceId, cfg.hardwareModel, bucket), status: deviceTopic(cfg.deviceId, 'status') };
      if (opts.json) console.log(JSON.stringify(out, null, 2));
      else console.log(`device ${out.deviceId}, bucket ${bucket}\nrollout topic   ${out.rollout}\nsubscribes to   ${out.subscriptions.join(', ')}\nstatus topic    ${out.status}`);
    });

  brokerOptions(agent.command('offer'))
    .description("publish a signed manifest (retained) on the device's wave topic, or clear it (abort)")
    .option('--manifest <file>', 'signed manifest envelope from `fleet firmware sign`')
    .option('--deployment <id>', 'deployment id to report under', 'manual-1')
    .option('--wave <n>', 'wave index', '0')
    .option('--clear', 'clear the retained manifest: devices not yet in their trial abort')
    .action(async (opts: BrokerOpts & { manifest?: string; deployment: string; wave: string; clear?: boolean }) => {
      const cfg = await loadAgentConfig(opts.config);
      const topic = rolloutTopic(cfg.hardwareModel, bucketOf(cfg.deviceId));
      if (opts.clear) {
        await publish(cfg, opts, topic, Buffer.alloc(0), true);
        console.log(`cleared ${topic}`);
        return;
      }
      if (opts.manifest === undefined) throw new ConfigError('give --manifest <file> (or --clear)');
      if (!DeploymentIdSchema.safeParse(opts.deployment).success) throw new ConfigError(`--deployment ${JSON.stringify(opts.deployment)} is not a valid id`);
      const raw = await readFile(opts.manifest).catch((err: Error) => {
        throw new ConfigError(`cannot read ${opts.manifest}: ${err.message}`);
      });
      const envelope = parsePayload(EnvelopeSchema, raw, opts.manifest ?? 'manifest');
      if (!envelope.ok) throw new ConfigError(envelope.error.message);
      const message = { v: 1, kind: 'rollout', deploymentId: opts.deployment, wave: Number(opts.wave), manifest: envelope.value };
      await publish(cfg, opts, topic, encodeMessage(message), true);
      console.log(`offered ${opts.manifest} as deployment ${opts.deployment} on ${topic}`);
    });

  brokerOptions(agent.command('command'))
    .description('sign and send a command to the device: rollback, reboot or report-now')
    .requiredOption('--action <action>', 'rollback | reboot | report-now')
    .requiredOption('--key <file>', 'private signing key trusted by the device (repeat for threshold)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--deployment <id>', 'the deployment a rollback undoes')
    .action(async (opts: BrokerOpts & { action: string; key: string[]; deployment?: string }) => {
      const cfg = await loadAgentConfig(opts.config);
      const action = CommandActionSchema.safeParse(opts.action);
      if (!action.success) throw new ConfigError(`--action must be one of ${CommandActionSchema.options.join(', ')}`);
      const { buildCommand, signCommand } = await import('@fleet/firmware/manifest');
      const { loadSigningKey } = await import('@fleet/firmware/keys');
      const keys = await Promise.all(opts.key.map((k) => loadSigningKey(k)));
      const command = buildCommand({
        commandId: `cli-${randomUUID().slice(0, 12)}`,
        deviceId: cfg.deviceId,
        action: action.data,
        issuedAt: Date.now(),
        ttlMs: 3600_000,
        ...definedProps({ deploymentId: opts.deployment }),
      });
      await publish(cfg, opts, deviceTopic(cfg.deviceId, 'commands'), encodeMessage({ v: 1, kind: 'command', command: signCommand(command, keys) }), false);
      console.log(`sent ${action.data} (${command.commandId}) to ${cfg.deviceId}`);
    });
}
