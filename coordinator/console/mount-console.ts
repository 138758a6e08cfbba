/**
 * Wires the operator console into a coordinator: the live event stream fed from the coordinator's
 * events (deployments, decisions, devices) and its audit log, and the console's routes on the admin
 * API. Returns what the coordinator stops.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Clock } from '@fleet/protocol/clock';
import { deviceView } from '../admin/device-routes.js';
import type { AdminApi } from '../admin/admin-api.js';
import type { DecisionRecord } from '../gate/decision.js';
import type { DeviceRecord } from '../registry/device-registry.js';
import type { AuditLog } from '../store/audit-log.js';
import type { Sql } from '../store/sql.js';
import { registerConsoleRoutes, type ConsoleRouteDeps } from './console-routes.js';
import { DeviceTelemetryReader } from './device-telemetry.js';
import { EventStream } from './event-stream.js';
import type { StaticConsole } from './static-console.js';

export interface MountConsoleDeps {
  api: AdminApi;
  authenticator: ConsoleRouteDeps['authenticator'];
  page: StaticConsole;
  /** The coordinator's events (CoordinatorEvents): `deployment`, `decision` and `device` are followed. */
  events: Pick<EventEmitter, 'on' | 'off'>;
  auditLog: Pick<AuditLog, 'subscribe'>;
  registry: ConsoleRouteDeps['devices'];
  anomalies: ConsoleRouteDeps['anomalies'];
  deployments: ConsoleRouteDeps['deployments'];
  /** A read handle on the telemetry tables. */
  telemetrySql: Sql;
  rollupSlotMs: number;
  timers: Clock;
  now: () => number;
  logger: Logger;
}

export function mountConsole(deps: MountConsoleDeps): { feed: EventStream; stop: () => void } {
  const feed = new EventStream({ timers: deps.timers, now: deps.now, logger: deps.logger });
  const onDeployment = (view: unknown): void => feed.publish('deployment', view);
  const onDecision = (decision: DecisionRecord): void => feed.publish('decision', decision);
  const onDevice = (d: DeviceRecord): void => feed.publishDevice(d.deviceId, deviceView(d));
  deps.events.on('deployment', onDeployment);
  deps.events.on('decision', onDecision);
  deps.events.on('device', onDevice);
  const unsubscribeAudit = deps.auditLog.subscribe((entry) => feed.publish('audit', entry));
  registerConsoleRoutes(deps.api, {
    page: deps.page,
    events: feed,
    authenticator: deps.authenticator,
    devices: deps.registry,
    anomalies: deps.anomalies,
    telemetry: new DeviceTelemetryReader(deps.telemetrySql, deps.rollupSlotMs),
    deployments: deps.deployments,
    now: deps.now,
  });
  let stopped = false;
  return {
    feed,
    stop: () => {
      if (stopped) return;
      stopped = true;
      deps.events.off('deployment', onDeployment);
      deps.events.off('decision', onDecision);
      deps.events.off('device', onDevice);
      unsubscribeAudit();
      feed.stop();
    },
  };
}
