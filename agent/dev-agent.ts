/**
 * `fleet agent dev <device-id>`: a real agent on this machine in one command, for trying a coordinator
 * out. The device is provisioned on the coordinator (by an injected enroller: the agent never imports
 * the coordinator, the `fleet` executable wires the two), a development agent.json is written with the
 * `file` slot backend (image files and a simulated bootloader; reboots happen in-process), and the
 * agent runs in the foreground until SIGINT/SIGTERM. I/O shell (fs).
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '@fleet/protocol/errors';
import { DeviceIdSchema, HardwareModelSchema, SemverSchema } from '@fleet/protocol/ids';
import { parseDuration } from '@fleet/firmware/duration';
import type { AgentConfigInput } from './config.js';

/** What the coordinator gives a device it provisioned: where to connect, as whom, and whom to trust. */
export interface DevEnrolment {
  brokerUrl: string;
  username: string;
  password: string;
  /** Directory of the public keys the coordinator's manifests and commands are signed with. */
  trustStoreDir: string;
  /** Where the device's files go when `--dir` is not given (next to the coordinator's data), if known. */
  defaultDir?: string;
}

export interface DevDevice {
  deviceId: string;
  hardwareModel: string;
  firmwareVersion: string;
  tags: string[];
}

/** Provisions a device on a coordinator. Supplied by the `fleet` executable, which knows both sides. */
export interface DevEnroller {
  /** Adds the options that choose the coordinator (URL, token, data dir) to the command. */
  addOptions(cmd: Command): Command;
  /** Provisions (or re-keys) the device; `opts` are the command's parsed options. */
  enrol(device: DevDevice, opts: Record<string, unknown>): Promise<DevEnrolment>;
}

export interface DevAgentFiles {
  configPath: string;
  dir: string;
}

/**
 * Writes `<dir>/agent.json` and `<dir>/broker-password` (0600) for a development agent on the file slot
 * backend: slots, state and downloads under `<dir>`, telemetry every `telemetryIntervalMs`.
 */
export async function writeDevAgentFiles(dir: string, device: DevDevice, enrolment: DevEnrolment, telemetryIntervalMs: number): Promise<DevAgentFiles> {
  const abs = resolve(dir);
  await mkdir(abs, { recursive: true });
  const passwordFile = join(abs, 'broker-password');
  await writeFile(passwordFile, enrolment.password, { mode: 0o600 });
  await chmod(passwordFile, 0o600);
  const config: AgentConfigInput = {
    deviceId: device.deviceId,
    hardwareModel: device.hardwareModel,
    firmwareVersion: device.firmwareVersion,
    tags: device.tags,
    broker: { url: enrolment.brokerUrl, username: enrolment.username, passwordFile: 'broker-password', reconnectMax: 10_000 },
    trustStoreDir: resolve(enrolment.trustStoreDir),
    dataDir: 'data',
    slots: { kind: 'file', dir: 'slots' },
    telemetry: { interval: telemetryIntervalMs },
  };
  const configPath = join(abs, 'agent.json');
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
  return { configPath, dir: abs };
}

interface DevOptions {
  model: string;
  version: string;
  tags?: string;
  dir?: string;
  telemetryInterval: string;
  configOnly?: boolean;
}

/** Registers `fleet agent dev`; `run` starts an agent from a config file (the `agent start` daemon). */
export function registerAgentDevCommand(agent: Command, enroller: DevEnroller, run: (configPath: string) => Promise<void>): void {
  const cmd = agent
    .command('dev <device-id>')
    .description('provision a device on a coordinator and run a real agent for it here (file slot backend), in the foreground')
    .option('--model <model>', 'hardware model the device reports', 'rpi4')
    .option('--version <semver>', 'firmware version it starts on (until its state says otherwise)', '1.0.0')
    .option('--tags <tags>', 'tags the device reports (comma-separated)')
    .option('--dir <dir>', "the device's files: agent.json, broker-password, slots, state (default: <data-dir>/agents/<device-id>)")
    .option('--telemetry-interval <duration>', 'telemetry period', '10s')
    .option('--config-only', 'write the files and exit; run it later with `fleet agent start -c <dir>/agent.json`');
  enroller.addOptions(cmd).action(async (deviceId: string, opts: DevOptions & Record<string, unknown>) => {
    const device: DevDevice = {
      deviceId: parsed(DeviceIdSchema, deviceId, 'device id'),
      hardwareModel: parsed(HardwareModelSchema, opts.model, '--model'),
      firmwareVersion: parsed(SemverSchema, opts.version, '--version'),
      tags: (opts.tags ?? '').split(',').map((t) => t.trim()).filter(Boolean),
    };
    const intervalMs = parseDuration(opts.telemetryInterval);
    const enrolment = await enroller.enrol(device, opts);
    const dir = opts.dir ?? enrolment.defaultDir;
    if (dir === undefined) throw new ConfigError('give --dir <dir> for the agent\'s files (no local coordinator data dir to put them in)');
    const files = await writeDevAgentFiles(dir, device, enrolment, intervalMs);
    console.error(`${device.deviceId} (${device.hardwareModel} ${device.firmwareVersion}) provisioned; its agent config is ${files.configPath}`);
    if (opts.configOnly) return;
    console.error(`starting its agent against ${enrolment.brokerUrl} (file slot backend in ${files.dir}); stop it with Ctrl-C`);
    await run(files.configPath);
  });
}

function parsed(schema: { safeParse(v: unknown): { success: boolean } }, value: string, what: string): string {
  if (!schema.safeParse(value).success) throw new ConfigError(`${what} ${JSON.stringify(value)} is not valid`);
  return value;
}
