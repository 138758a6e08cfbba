/**
 * What the coordinator does with each device message once ingest has parsed and admitted it: the
 * registry learns who is there and what it runs, a status is stored in the inbox before anything else
 * (its PUBACK waits for that), telemetry goes to the telemetry thread, and the deployments hear hellos,
 * statuses and presence. Built from parts that already exist, so no handler reaches for an object
 * that is not there yet. I/O shell.
 */
import type { Clock } from '@fleet/protocol/clock';
import type { HelloMessage, PresenceMessage, StatusMessage } from '@fleet/protocol/messages';
import type { Counters } from '../metrics.js';
import type { DeviceRegistry } from '../registry/device-registry.js';
import type { AnomalyLog } from '../registry/anomaly-log.js';
import type { TelemetryWriter } from '../telemetry/telemetry-writer.js';
import type { DeploymentService } from '../deployments/deployment-service.js';
import type { IngestHandlers } from './device-ingest.js';
import type { StatusInbox } from './status-inbox.js';

export interface DeviceMessagesDeps {
  registry: DeviceRegistry;
  anomalies: Pick<AnomalyLog, 'record'>;
  inbox: StatusInbox;
  telemetry: Pick<TelemetryWriter, 'enqueue'>;
  deployments: Pick<DeploymentService, 'hello' | 'status' | 'presence'>;
  counters: Counters;
  clock: Clock;
}

/** The ingest handlers, and what a dropped connection means (the broker saw the device go). */
export interface DeviceMessages extends IngestHandlers {
  disconnected(deviceId: string): void;
}

export function deviceMessages(d: DeviceMessagesDeps): DeviceMessages {
  const { registry, deployments, clock } = d;
  const setOnline = (deviceId: string, online: boolean): void => {
    registry.setOnline(deviceId, online, clock.now());
    deployments.presence(deviceId, online);
  };
  return {
    hello(m: HelloMessage): void {
      // The operator's registry is authoritative: a hello contradicting it changes nothing (and no ACL).
      const refusal = registry.checkHello(m);
      if (refusal) {
        d.counters.inc('ingest.hello.refused');
        registry.seen(m.deviceId, clock.now());
        d.anomalies.record(m.deviceId, refusal.kind, refusal.detail);
        return;
      }
      registry.applyHello(m, clock.now());
      deployments.hello(m);
    },

    status(m: StatusMessage): Promise<void> {
      const now = clock.now();
      // Stored before the PUBACK (which waits for this handler): an acknowledged status survives a crash.
      // The commit is shared with the turn's other statuses; the engine hears the status at once, in its
      // order with hellos and presence (a status whose commit fails is sent again and ignored as a duplicate).
      const stored = d.inbox.record(m, now);
      registry.seen(m.deviceId, now);
      // Both terminal reports name the version now running in toVersion (a rollback goes "to" the old one).
      if (m.state === 'committed' || m.state === 'rolled-back') registry.noteVersion(m.deviceId, m.toVersion);
      registry.noteUpdate(m.deviceId, { deploymentId: m.deploymentId, state: m.state, toVersion: m.toVersion });
      const fed = deployments.status(m);
      return Promise.all([stored, fed]).then(() => undefined);
    },

    telemetry(deviceId: string, payload: Buffer): void {
      // Inside the broker's delivery hook: the transport vouched for the publisher, so the device is
      // alive; the payload is parsed and stored on the telemetry thread (telemetry-writer.ts).
      const now = clock.now();
      registry.seen(deviceId, now);
      d.telemetry.enqueue(deviceId, payload, now);
    },

    presence(m: PresenceMessage): void {
      setOnline(m.deviceId, m.state === 'online');
    },

    disconnected(deviceId: string): void {
      setOnline(deviceId, false);
    },
  };
}
