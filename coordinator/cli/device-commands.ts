/** `fleet devices list|show|provision|revoke|anomalies` over the admin API. */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AdminClient, type ConnectionOptions } from './admin-client.js';
import { ago, list, table } from './format.js';

interface DeviceView {
  deviceId: string;
  hardwareModel: string | null;
  firmwareVersion: string | null;
  activeSlot: string | null;
  securityFloor?: number;
  agentVersion: string | null;
  bucket: number;
  tags: string[];
  operatorTags?: string[];
  reportedTags?: string[];
  online: boolean;
  lastSeen: number | null;
  provisionedAt: number | null;
  /** Never provisioned: connected without credentials (development); in no wave. */
  ghost?: boolean;
  hasCredentials?: boolean;
  update?: { deploymentId: string; state: string } | null;
  deployments?: unknown[];
  anomalies?: AnomalyView[];
}

interface AnomalyView {
  deviceId: string;
  kind: string;
  count: number;
  firstAt: number;
  lastAt: number;
  detail: string;
}

function anomalyTable(rows: AnomalyView[], withDevice: boolean): string {
  return table(
    [...(withDevice ? ['device'] : []), 'anomaly', 'count', 'last', 'first', 'detail'],
    rows.map((a) => [...(withDevice ? [a.deviceId] : []), a.kind, a.count, ago(a.lastAt), ago(a.firstAt), a.detail]),
  );
}

export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'coordinator admin URL (default: FLEET_URL or the local data dir)')
    .option('--token <token>', 'operator token (default: FLEET_TOKEN or the local data dir)')
    .option('--data-dir <dir>', 'data directory of a local coordinator (default: FLEET_DATA_DIR or .fleet)');
}

export function client(opts: ConnectionOptions): AdminClient {
  return AdminClient.resolve(opts);
}

export function registerDeviceCommands(program: Command): void {
  const devices = program.command('devices').description('the device registry and device credentials');

  addConnectionOptions(
    devices
      .command('list')
      .description('list devices (model, version, slot, online, last seen)')
      .option('--model <model>', 'only this hardware model')
      .option('--version <semver>', 'only devices running this firmware version')
      .option('--online', 'only online devices')
      .option('--offline', 'only offline devices')
      .option('--tag <tag>', 'only devices with this tag')
      .option('--limit <n>', 'at most this many rows', '500')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: ConnectionOptions & { model?: string; version?: string; online?: boolean; offline?: boolean; tag?: string; limit: string; json?: boolean }) => {
    const q = new URLSearchParams({ limit: opts.limit });
    if (opts.model) q.set('model', opts.model);
    if (opts.version) q.set('version', opts.version);
    if (opts.online) q.set('online', 'true');
    if (opts.offline) q.set('online', 'false');
    if (opts.tag) q.set('tag', opts.tag);
    const res = await client(opts).get<{ total: number; online: number; devices: DeviceView[] }>(`/v1/devices?${q.toString()}`);
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(
      table(
        ['device', 'model', 'version', 'slot', 'agent', 'bucket', 'tags', 'state', 'last seen'],
        res.devices.map((d) => [
          d.deviceId, d.hardwareModel ?? '-', d.firmwareVersion ?? '-', d.activeSlot ?? '-', d.agentVersion ?? '-', d.bucket,
          d.tags.join(',') || '-', `${d.online ? 'online' : 'offline'}${d.ghost ? ' (ghost)' : ''}`, ago(d.lastSeen),
        ]),
      ),
    );
    console.log(`${res.total} device(s), ${res.online} online${res.devices.length < res.total ? ` (showing ${res.devices.length}; use --limit)` : ''}`);
  });

  addConnectionOptions(devices.command('show <id>').description('one device in detail, with its deployments').option('--json', 'machine-readable output')).action(
    async (id: string, opts: ConnectionOptions & { json?: boolean }) => {
      const d = await client(opts).get<DeviceView>(`/v1/devices/${encodeURIComponent(id)}`);
      if (opts.json) return console.log(JSON.stringify(d, null, 2));
      const rows: [string, string][] = [
        ['device', d.deviceId],
        ['hardware model', d.hardwareModel ?? '-'],
        ['firmware', d.firmwareVersion ?? '-'],
        ['active slot', d.activeSlot ?? '-'],
        ['security floor', d.securityFloor !== undefined ? String(d.securityFloor) : '-'],
        ['agent', d.agentVersion ?? '-'],
        ['bucket', String(d.bucket)],
        ['tags', d.tags.join(', ') || '-'],
        ['  by operator', d.operatorTags?.join(', ') || '-'],
        ['  reported', d.reportedTags?.join(', ') || '-'],
        ['state', d.online ? 'online' : 'offline'],
        ['last seen', ago(d.lastSeen)],
        ['credentials', d.hasCredentials ? 'provisioned' : d.ghost ? 'none: a ghost (connected without credentials), in no wave' : 'none'],
        ['update', d.update ? `${d.update.deploymentId}: ${d.update.state}` : '-'],
      ];
      console.log(table(['field', 'value'], rows));
      const deps = (d.deployments ?? []) as { deploymentId: string; wave: number; state: string; reason?: string }[];
      if (deps.length) console.log(table(['deployment', 'wave', 'state', 'reason'], deps.map((x) => [x.deploymentId, x.wave + 1, x.state, x.reason ?? '-'])));
      if (d.anomalies?.length) console.log(anomalyTable(d.anomalies, false));
    },
  );

  addConnectionOptions(
    devices
      .command('anomalies')
      .description('what devices did that the coordinator refused or shed (wrong model, unoffered statuses, floods, oversized packets, throttled logins)')
      .option('--kind <kind>', 'only this kind (wrong-model, unoffered-status, rate-limited, oversized-packet, login-throttled, spoofed-identity)')
      .option('--device <id>', 'only this device')
      .option('--limit <n>', 'at most this many rows', '500')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: ConnectionOptions & { kind?: string; device?: string; limit: string; json?: boolean }) => {
    const q = new URLSearchParams({ limit: opts.limit });
    if (opts.kind) q.set('kind', opts.kind);
    if (opts.device) q.set('device', opts.device);
    const res = await client(opts).get<{ anomalies: AnomalyView[] }>(`/v1/anomalies?${q.toString()}`);
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    if (res.anomalies.length === 0) return console.log('no anomalies recorded');
    console.log(anomalyTable(res.anomalies, true));
  });

  addConnectionOptions(
    devices
      .command('provision <ids...>')
      .description('create MQTT credentials for devices (the secret is shown once; only a hash is stored)')
      .option('--model <model>', 'hardware model the devices are')
      .option('--tags <tags>', 'tags to record (comma-separated)', list)
      .option('--rotate', 'issue new secrets for devices that already have credentials')
      .option('--out <file>', 'also write {deviceId: secret} JSON to this file (mode 0600)')
      .option('--json', 'machine-readable output'),
  ).action(async (ids: string[], opts: ConnectionOptions & { model?: string; tags?: string[]; rotate?: boolean; out?: string; json?: boolean }) => {
    const res = await client(opts).post<{ devices: { deviceId: string; secret: string }[] }>('/v1/devices/provision', {
      deviceIds: ids,
      ...(opts.model ? { hardwareModel: opts.model } : {}),
      ...(opts.tags ? { tags: opts.tags } : {}),
      rotate: opts.rotate ?? false,
    });
    if (opts.out) {
      await writeFile(opts.out, JSON.stringify(Object.fromEntries(res.devices.map((d) => [d.deviceId, d.secret])), null, 2) + '\n', { mode: 0o600 });
    }
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(table(['device', 'username', 'password (shown once)'], res.devices.map((d) => [d.deviceId, d.deviceId, d.secret])));
    console.log('Configure each agent with broker.username = device id and broker.password (or passwordFile) = the secret.');
  });

  addConnectionOptions(devices.command('revoke <id>').description("revoke a device's credentials (it can no longer connect)")).action(
    async (id: string, opts: ConnectionOptions) => {
      await client(opts).request('DELETE', `/v1/devices/${encodeURIComponent(id)}/credentials`);
      console.log(`revoked credentials of ${id}`);
    },
  );
}
