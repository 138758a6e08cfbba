/**
 * "Devices per simulator process": N simulated devices (the real agent on the in-memory slot backend,
 * with its behaviour model) connected from this process, measured the same way as the bare mqtt.js
 * baseline. I/O shell.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { generateSigningKey } from '@fleet/firmware/keys';
import { createTrustStore } from '@fleet/firmware/trust-store';
import { DeviceHost, fleetAgentConfig, type FirmwareImage } from '../device-host.js';
import { composeFleet } from '../fleet-composition.js';
import { FaultSpecSchema, FleetSpecSchema } from '../scenario.js';
import { digest, imageBytes } from '../firmware-images.js';
import { boundedEach, settledMemory } from './measure.js';
import { PacedClock } from '../paced-clock.js';
import { timed, type ConnectResult } from './bare-clients.js';

export async function connectSimulated(
  brokerUrl: string,
  n: number,
  width: number,
  runId: string,
  secrets?: ReadonlyMap<string, string>,
): Promise<{ result: ConnectResult; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-'));
  // Real time: connecting is what is measured, and nothing here waits on a simulated deadline.
  const clock = new PacedClock({ scale: 1, pacing: false });
  clock.start();
  const logger = pino({ level: 'silent' });
  const key = generateSigningKey();
  const trust = createTrustStore([key]);
  const base: FirmwareImage = { version: '1.0.0', ...digest(imageBytes('bench/1.0.0', 64)) };
  const images = new Map([[base.sha256, base]]);
  const specs = composeFleet(FleetSpecSchema.parse({}), n, 'bench', runId);
  const faults = FaultSpecSchema.parse({});
  const before = await settledMemory();
  const agentConfig = fleetAgentConfig(brokerUrl, base.version, 60_000);
  const hosts = specs.map(
    (spec) =>
      new DeviceHost({
        spec, clock, logger, agentConfig, secret: secrets?.get(spec.deviceId) ?? null, trust, dataDir: join(dir, spec.deviceId), baseImage: base,
        images, behaviours: new Map(), sampleNoise: 0.04, faults, proxy: null, faultCounts: {},
      }),
  );
  const { ms, cpuMs } = await timed(() =>
    boundedEach(n, width, async (i) => {
      const h = hosts[i]!;
      await h.start();
      await h.whenConnected(60_000);
    }),
  );
  const connected = hosts.filter((h) => h.connected).length;
  if (connected < n) throw new Error(`only ${connected} of ${n} simulated devices connected`);
  const after = await settledMemory();
  return {
    result: { n, ms, cpuMs, bytesPerConnection: (after.rss - before.rss) / n, heapPerConnection: (after.heapUsed - before.heapUsed) / n },
    stop: async () => {
      await boundedEach(n, 500, (i) => hosts[i]!.stop());
      clock.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
