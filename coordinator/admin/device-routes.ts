/** Admin API: the device registry, device credentials and device anomalies. */
import { z } from 'zod';
import { DeviceIdSchema, HardwareModelSchema, TagSchema } from '@fleet/protocol/ids';
import type { CredentialStore } from '../broker/credentials.js';
import type { DeviceAccounts } from '../broker/device-accounts.js';
import type { DeviceRecord, DeviceRegistry } from '../registry/device-registry.js';
import { AnomalyKindSchema, type AnomalyLog } from '../registry/anomaly-log.js';
import { actorOf, type AdminApi } from './admin-api.js';
import { NotFoundError } from './http-errors.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface DeviceRouteDeps {
  registry: DeviceRegistry;
  credentials: CredentialStore;
  /** Provisioning, rotation and revocation, in the store and on the broker. */
  accounts: Pick<DeviceAccounts, 'provision' | 'revoke'>;
  now: () => number;
  /** Records the action in the audit log; resolves once stored (the answer follows it). */
  audit: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => Promise<void>;
  /** Per-deployment progress of one device, newest first (from the engine's repository). */
  deviceDeployments?: (deviceId: string) => Promise<unknown[]>;
  /** What devices did that was refused or shed. */
  anomalies?: Pick<AnomalyLog, 'list' | 'forDevice'>;
}

const AnomalyQuery = z.object({
  kind: AnomalyKindSchema.optional(),
  device: DeviceIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(500),
});

const ListQuery = z.object({
  model: HardwareModelSchema.optional(),
  version: z.string().optional(),
  online: z.enum(['true', 'false']).optional(),
  tag: TagSchema.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(500),
  offset: z.coerce.number().int().min(0).default(0),
});

const ProvisionBody = z.object({
  deviceIds: z.array(DeviceIdSchema).min(1).max(100_000),
  hardwareModel: HardwareModelSchema.optional(),
  tags: z.array(TagSchema).max(32).optional(),
  /** Issue new secrets for devices that already have credentials. */
  rotate: z.boolean().default(false),
  /** Why (recorded in the audit log). */
  reason: z.string().max(500).optional(),
});

const ReasonQuery = z.object({ reason: z.string().max(500).optional() });

export function deviceView(d: DeviceRecord, credentials?: CredentialStore): Record<string, unknown> {
  return {
    deviceId: d.deviceId,
    hardwareModel: d.hardwareModel ?? null,
    firmwareVersion: d.firmwareVersion ?? null,
    activeSlot: d.activeSlot ?? null,
    /** The device's anti-rollback floor (its hello): images below it are never booted there again. */
    securityFloor: d.securityFloor,
    agentVersion: d.agentVersion ?? null,
    bucket: d.bucket,
    tags: d.tags,
    operatorTags: d.operatorTags,
    reportedTags: d.reportedTags,
    online: d.online,
    lastSeen: d.lastSeen ?? null,
    firstSeen: d.firstSeen ?? null,
    provisionedAt: d.provisionedAt ?? null,
    ghost: d.ghost,
    update: d.update ?? null,
    ...(credentials ? { hasCredentials: credentials.has(d.deviceId) } : {}),
  };
}

const IdParams = z.object({ id: z.string() });

export function registerDeviceRoutes(api: AdminApi, deps: DeviceRouteDeps): void {
  api.get('/v1/devices', { schema: { summary: 'devices, filtered', querystring: ListQuery } }, ({ query }) => {
    const all = deps.registry.list({
      ...definedProps({ hardwareModel: query.model, firmwareVersion: query.version }),
      ...(query.online !== undefined ? { online: query.online === 'true' } : {}),
      ...definedProps({ tag: query.tag }),
    });
    return {
      total: all.length,
      online: all.filter((d) => d.online).length,
      devices: all.slice(query.offset, query.offset + query.limit).map((d) => deviceView(d)),
    };
  });

  api.get('/v1/devices/:id', { schema: { summary: 'a device with its deployments and anomalies', params: IdParams } }, async ({ params }) => {
    const d = deps.registry.get(params.id);
    if (!d) throw new NotFoundError(`no device ${params.id}; list devices with \`fleet devices list\``);
    return {
      ...deviceView(d, deps.credentials),
      deployments: (await deps.deviceDeployments?.(d.deviceId)) ?? [],
      anomalies: deps.anomalies?.forDevice(d.deviceId) ?? [],
    };
  });

  api.get('/v1/anomalies', { schema: { summary: 'what devices did that was refused or shed', querystring: AnomalyQuery } }, ({ query }) => {
    const anomalies = deps.anomalies?.list({
      limit: query.limit,
      ...definedProps({ kind: query.kind, deviceId: query.device }),
    }) ?? [];
    return { anomalies };
  });

  api.post('/v1/devices/provision', { schema: { summary: 'create device credentials (secrets shown once)', body: ProvisionBody } }, async (request, reply) => {
    const { body } = request;
    // The store and the broker together (an external broker's accounts too): device-accounts.ts.
    const provisioned = await deps.accounts.provision(body.deviceIds, { rotate: body.rotate, ...definedProps({ hardwareModel: body.hardwareModel, tags: body.tags }) });
    await deps.audit(actorOf(request), 'devices.provisioned', body.deviceIds.length === 1 ? body.deviceIds[0]! : `${body.deviceIds.length} devices`, {
      count: body.deviceIds.length,
      rotate: body.rotate,
      ...definedProps({ reason: body.reason }),
    });
    return reply.code(201).send({ devices: provisioned });
  });

  api.delete('/v1/devices/:id/credentials', { schema: { summary: "revoke a device's credentials", params: IdParams, querystring: ReasonQuery } }, async (request) => {
    const id = request.params.id;
    const { found, brokerError } = await deps.accounts.revoke(id);
    if (!found) throw new NotFoundError(`device ${id} has no credentials`);
    await deps.audit(actorOf(request), 'devices.revoked', id, definedProps({ reason: request.query.reason }));
    if (brokerError) throw brokerError;
    return { deviceId: id, revoked: true };
  });
}
