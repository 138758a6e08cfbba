/**
 * A device process: hosts a slice of the simulated fleet (real agents, as in-process devices are) in
 * a child of the simulator, driven over IPC by process-fleet.ts. Its clock follows the parent's paced
 * clock and reports this process's load back to it. Exits when told to stop or when the parent goes.
 * I/O shell; run as `node simulator/dist/device-process.js` by `fork`.
 */
import pino from 'pino';
import type { AgentState } from '@fleet/agent';
import { publicKeyFromPem } from '@fleet/firmware/keys';
import { createTrustStore } from '@fleet/firmware/trust-store';
import { errorMessage } from '@fleet/protocol/errors';
import { formatIssues } from '@fleet/protocol/parse';
import { fleetAgentConfig } from './device-host.js';
import { LocalDeviceFleet } from './device-fleet.js';
import { FollowerClock } from './follower-clock.js';
import { ParentMessageSchema, tracedState, type ChildMessage, type DeviceProcessCall, type DeviceProcessInit } from './device-process-messages.js';

/** Real ms between load reports: the parent's pace controller's window. */
const LOAD_REPORT_MS = 100;

let fleet: LocalDeviceFleet | null = null;
let clock: FollowerClock | null = null;
let loadTimer: NodeJS.Timeout | null = null;
/** The last traced state sent per device (JSON): unchanged ones are not sent again. */
const lastTraced = new Map<string, string>();
const logger = pino({ level: process.env['FLEET_SIM_LOG_LEVEL'] ?? 'silent' }).child({ module: 'device-process', pid: process.pid });

const send = (msg: ChildMessage): void => {
  if (process.connected) process.send?.(msg);
};

function init(m: DeviceProcessInit): void {
  clock = new FollowerClock({ initial: m.time });
  clock.start();
  const c = clock;
  loadTimer = setInterval(() => send({ type: 'load', ...c.takeLoad() }), LOAD_REPORT_MS);
  loadTimer.unref();
  const trust = createTrustStore(m.trust.keys.map((pem) => publicKeyFromPem(pem)), m.trust.threshold);
  fleet = new LocalDeviceFleet({
    specs: m.specs,
    clock,
    logger,
    agentConfig: fleetAgentConfig(m.agent.brokerUrls, m.agent.baseVersion, m.agent.telemetryIntervalMs, m.agent.tags),
    secrets: new Map(Object.entries(m.secrets)),
    trust,
    devicesDir: m.devicesDir,
    baseImage: m.baseImage,
    behaviours: new Map(m.behaviours),
    sampleNoise: m.sampleNoise,
    faults: m.faults,
    proxy: m.proxy,
    ...(m.localAddress !== undefined ? { localAddress: m.localAddress } : {}),
    ...(m.traceStates ? { onState: (deviceId, state) => traceState(deviceId, state) } : {}),
  });
  send({ type: 'ready' });
}

function traceState(deviceId: string, full: AgentState): void {
  const epochMs = performance.timeOrigin + performance.now();
  const state = tracedState(full);
  const json = JSON.stringify(state);
  if (lastTraced.get(deviceId) === json) return;
  lastTraced.set(deviceId, json);
  send({ type: 'state', deviceId, state, epochMs });
}

async function call(f: LocalDeviceFleet, c: DeviceProcessCall): Promise<unknown> {
  switch (c.method) {
    case 'startOnline':
      return f.startOnline(c.concurrency);
    case 'startReturning':
      return f.startReturning(c.concurrency);
    case 'addImage':
      return f.addImage(c.image);
    case 'startTelemetry':
      return f.startTelemetry(c.intervalMs);
    case 'startDrops':
      return f.startDrops(c.perDeviceH, c.seed);
    case 'dropAll':
      return f.dropAll();
    case 'everyoneOn':
      return f.everyoneOn(c.version);
    case 'truths':
      return f.truths();
    case 'faultCounts':
      return f.faultCounts();
    case 'usage': {
      const cpu = process.cpuUsage();
      return { cpuMs: (cpu.user + cpu.system) / 1000, rss: process.memoryUsage.rss(), connected: f.connectedCount(), telemetrySent: f.telemetrySent };
    }
    case 'stop':
      await shutdown();
      return undefined;
  }
}

async function shutdown(): Promise<void> {
  if (loadTimer) clearInterval(loadTimer);
  loadTimer = null;
  await fleet?.stop();
  clock?.stop();
}

process.on('message', (raw: unknown) => {
  const parsed = ParentMessageSchema.safeParse(raw);
  if (!parsed.success) {
    logger.error({ issues: formatIssues(parsed.error) }, 'unreadable message from the simulator');
    return;
  }
  const m = parsed.data;
  if (m.type === 'init') {
    init(m);
    return;
  }
  if (m.type === 'sync') {
    clock?.follow(m.time);
    return;
  }
  const f = fleet;
  if (!f) {
    send({ type: 'reply', id: m.id, ok: false, error: 'the device process has not been initialised' });
    return;
  }
  call(f, m.call).then(
    (value) => {
      send({ type: 'reply', id: m.id, ok: true, ...(value !== undefined ? { value } : {}) });
      if (m.call.method === 'stop') process.disconnect();
    },
    (err: unknown) => send({ type: 'reply', id: m.id, ok: false, error: errorMessage(err) }),
  );
});

// The simulator went away (it ended or was killed): power the devices off and go too.
process.on('disconnect', () => {
  void shutdown().finally(() => process.exit(0));
});
