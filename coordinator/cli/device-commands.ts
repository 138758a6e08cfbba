/** `fleet devices list|show|provision|wait|revoke|anomalies` over the admin API. */
import { chmod, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AdminApiError, AdminClient, type ConnectionOptions } from './admin-client.js';
import { FleetError } from '@fleet/protocol/errors';
import { parseDuration } from '@fleet/firmware/duration';
import { ago, list, table } from './format.js';
import { definedProps } from '@fleet/firmware/defined-props';

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
  update?: { deploymentId: string; state: string; toVersion?: string } | null;
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
        ['update', d.update ? `${d.update.deploymentId}: ${d.update.state}${d.update.toVersion ? ` (${d.update.toVersion})` : ''}` : '-'],
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
      .option('--out <file>', 'write {deviceId: secret} JSON to this file (mode 0600) instead of printing the secrets')
      .option('--reason <text>', 'why (recorded in the audit log)')
      .option('--json', 'machine-readable output (with the secrets, unless --out)'),
  ).action(async (ids: string[], opts: ConnectionOptions & { model?: string; tags?: string[]; rotate?: boolean; out?: string; reason?: string; json?: boolean }) => {
    const res = await client(opts).post<{ devices: { deviceId: string; secret: string }[] }>('/v1/devices/provision', {
      deviceIds: ids,
      ...(opts.model ? { hardwareModel: opts.model } : {}),
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...definedProps({ reason: opts.reason }),
      rotate: opts.rotate ?? false,
    });
    if (opts.out) {
      // The secrets go to the file only: a terminal's scrollback and CI logs keep what is printed.
      await writeFile(opts.out, JSON.stringify(Object.fromEntries(res.devices.map((d) => [d.deviceId, d.secret])), null, 2) + '\n', { mode: 0o600 });
      await chmod(opts.out, 0o600);
      if (opts.json) return console.log(JSON.stringify({ devices: res.devices.map((d) => ({ deviceId: d.deviceId })), out: opts.out }, null, 2));
      console.log(`provisioned ${res.devices.map((d) => d.deviceId).join(', ')}; secrets written to ${opts.out} (mode 0600), shown nowhere else`);
      console.log('Configure each agent with broker.username = device id and broker.passwordFile holding its secret.');
      return;
    }
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(table(['device', 'username', 'password (shown once)'], res.devices.map((d) => [d.deviceId, d.deviceId, d.secret])));
    console.log('Configure each agent with broker.username = device id and broker.password (or passwordFile) = the secret.');
  });

  addConnectionOptions(
    devices
      .command('wait <ids...>')
      .description('wait until devices are online (connected and said hello), e.g. after starting their agents')
      .option('--timeout <duration>', 'give up after this long', '60s')
      .option('--version <semver>', 'also wait until each runs this firmware version'),
  ).action(async (ids: string[], opts: ConnectionOptions & { timeout: string; version?: string }) => {
    const api = client(opts);
    const deadline = Date.now() + parseDuration(opts.timeout);
    for (const id of ids) {
      const d = await waitForDevice(api, id, deadline, (v) => v.online && v.firmwareVersion !== null && (opts.version === undefined || v.firmwareVersion === opts.version));
      if (!d) {
        const want = opts.version !== undefined ? `online on ${opts.version}` : 'online';
        throw new FleetError('timeout', `${id} is not ${want} after ${opts.timeout}: is its agent running and pointed at this coordinator? (\`fleet devices show ${id}\`)`);
      }
      console.log(`${d.deviceId} online: ${d.hardwareModel ?? '?'} ${d.firmwareVersion ?? '?'} on slot ${d.activeSlot ?? '?'}`);
    }
  });

  addConnectionOptions(
    devices.command('revoke <id>').description("revoke a device's credentials (it can no longer connect)").option('--reason <text>', 'why (recorded in the audit log)'),
  ).action(
    async (id: string, opts: ConnectionOptions & { reason?: string }) => {
      const q = opts.reason !== undefined ? `?${new URLSearchParams({ reason: opts.reason }).toString()}` : '';
      await client(opts).request('DELETE', `/v1/devices/${encodeURIComponent(id)}/credentials${q}`);
      console.log(`revoked credentials of ${id}`);
    },
  );
}

/** Polls one device until `ready` holds (an unknown device is not an error yet); undefined at the deadline. */
async function waitForDevice(api: AdminClient, id: string, deadline: number, ready: (d: DeviceView) => boolean): Promise<DeviceView | undefined> {
  for (;;) {
    try {
      const d = await api.get<DeviceView>(`/v1/devices/${encodeURIComponent(id)}`);
      if (ready(d)) return d;
    } catch (err) {
      if (!(err instanceof AdminApiError && err.status === 404)) throw err;
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 300));
  }
}
