/**
 * Agent integration: real Aedes broker and real HTTP server on 127.0.0.1, the file slot backend with
 * its simulated bootloader, and the SimulatedDevice harness performing the reboots.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { FileSlotBackend } from '../../agent/slots/slot-backend-file.js';
import { SimulatedDevice } from '../../agent/simulated-device.js';
import { agentConfig, image, publishRollout, silent, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

async function device(deviceId: string, overrides: Parameters<typeof agentConfig>[2] = {}) {
  const config = agentConfig(f, deviceId, overrides);
  const factory = join(f.dir, `${deviceId}-factory.img`);
  await writeFile(factory, image('factory').body);
  const slots = await FileSlotBackend.create({ dir: join(f.dir, deviceId, 'slots'), factoryImage: factory });
  const dev = new SimulatedDevice({ config, slots, logger: silent });
  f.devices.push(dev);
  await dev.start();
  return { dev, slots };
}

describe('agent install', () => {
  it('downloads, installs, reboots into the trial, health-checks and commits', async () => {
    const id = uniqueId('dev');
    const { dev, slots } = await device(id);
    await waitFor(() => dev.agent?.connected === true, 'agent connected');
    const img = image('v1.1.0');
    f.artifacts.put('fw-1.1.0.img', img.body);
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact: { url: f.artifacts.url('fw-1.1.0.img'), size: img.body.length, sha256: img.sha256 }, securityVersion: 3 });
    await waitFor(() => f.observer.statuses(id).some((s) => s.state === 'committed'), 'committed status');
    const states = f.observer.statuses(id).map((s) => s.state);
    expect(states).toEqual(expect.arrayContaining(['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'committed']));
    expect(states.indexOf('rebooting')).toBeLessThan(states.indexOf('trial'));
    const seqs = f.observer.statuses(id).map((s) => s.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    const boot = await slots.state();
    expect(boot.primary).toBe('B');
    expect(boot.booted).toBe('B');
    await dev.settled();
    expect(dev.agent!.state.slotVersions).toEqual({ A: '1.0.0', B: '1.1.0' });
    expect(dev.agent!.state.securityFloor).toBe(3);
    expect(dev.agent!.state.handled).toContain(dep);
    // The hello after the trial boot tells a restarted coordinator where the device is; the one after
    // the commit tells it the floor rose.
    await waitFor(() => f.observer.of(id, 'hello').at(-1)?.['securityFloor'] === 3, 'hello with the new floor');
    const hellos = f.observer.of(id, 'hello');
    expect(hellos.at(-2)).toMatchObject({ firmwareVersion: '1.1.0', activeSlot: 'B', securityFloor: 0, update: { deploymentId: dep, state: 'trial', toVersion: '1.1.0' } });
    expect(hellos.at(-1)).toMatchObject({ firmwareVersion: '1.1.0', activeSlot: 'B', securityFloor: 3, update: { deploymentId: dep, state: 'committed', toVersion: '1.1.0' } });
  });
});
