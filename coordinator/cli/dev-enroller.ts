/**
 * The coordinator's half of `fleet agent dev`: provisions the device over the admin API (a new secret
 * each time, so a re-run never needs the old one) and says where the agent connects and whose keys it
 * trusts. Matches the agent's DevEnroller interface structurally; the `fleet` executable wires the two,
 * so neither domain imports the other. I/O shell (admin API).
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '@fleet/protocol/errors';
import type { ConnectionOptions } from './connection.js';
import { addConnectionOptions, client } from './device-commands.js';

interface Device {
  deviceId: string;
  hardwareModel: string;
}

interface Enrolment {
  brokerUrl: string;
  username: string;
  password: string;
  trustStoreDir: string;
  defaultDir?: string;
}

export const devEnroller = {
  addOptions(cmd: Command): Command {
    return addConnectionOptions(cmd).option('--trust <dir>', "trust store for the agent (default: the local coordinator's <data-dir>/trust)");
  },

  async enrol(device: Device, opts: Record<string, unknown>): Promise<Enrolment> {
    const conn: ConnectionOptions = {
      ...(typeof opts['url'] === 'string' ? { url: opts['url'] } : {}),
      ...(typeof opts['token'] === 'string' ? { token: opts['token'] } : {}),
      ...(typeof opts['dataDir'] === 'string' ? { dataDir: opts['dataDir'] } : {}),
    };
    const api = client(conn);
    const dataDir = api.origin.dataDir;
    const trustStoreDir = typeof opts['trust'] === 'string' ? opts['trust'] : dataDir !== undefined ? join(dataDir, 'trust') : undefined;
    if (trustStoreDir === undefined) {
      throw new ConfigError("give --trust <dir> holding the coordinator's public key (its <data-dir>/trust): the agent must verify what it is sent");
    }
    const info = await api.get<{ mqttUrl: string }>('/v1/info');
    const res = await api.post<{ devices: { deviceId: string; secret: string }[] }>('/v1/devices/provision', {
      deviceIds: [device.deviceId],
      hardwareModel: device.hardwareModel,
      rotate: true,
    });
    const secret = res.devices.find((d) => d.deviceId === device.deviceId)?.secret;
    if (secret === undefined) throw new ConfigError(`the coordinator did not provision ${device.deviceId}`);
    return {
      brokerUrl: info.mqttUrl,
      username: device.deviceId,
      password: secret,
      trustStoreDir,
      ...(dataDir !== undefined ? { defaultDir: join(dataDir, 'agents', device.deviceId) } : {}),
    };
  },
};
