/**
 * Power loss at every stage of a real install (Agent, Aedes, HTTP, file backend): the power is cut
 * the moment the agent has recorded each stage, the device boots again, and the update still ends
 * committed — a cut during the trial is retried once by the agent — or, when the cut spends the
 * one-shot trial before the agent ran on the new slot, honestly rolled back to the old slot, which is
 * then retried by nobody (the deployment is handled). Never an unbootable device.
 */
import { describe, expect, it } from 'vitest';
import type { JobStage } from '../../agent/agent-state.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileSlotBackend } from '../../agent/slots/slot-backend-file.js';
import { SimulatedDevice, type PowerableSlotBackend } from '../../agent/simulated-device.js';
import { agentConfig, image, publishRollout, serveImage, silent, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

const STAGES: JobStage[] = ['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'committing'];

describe('power loss', () => {
  it.each(STAGES)('cut when the agent has recorded %s: the device comes back and finishes honestly', async (stage) => {
    const id = uniqueId('dev');
    let cut = false;
    const holder: { device?: SimulatedDevice } = {};
    const { dev, slots } = await startDevice(f, id, {}, {
      onStateChange: (state) => {
        if (!cut && state.job?.stage === stage) {
          cut = true;
          // From outside the agent's event queue, as a real power cut would be.
          setImmediate(() => void holder.device?.powerLoss());
        }
      },
    });
    holder.device = dev;
    f.devices.push(dev);
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact: serveImage(f, `${id}.img`, `img-${stage}`, 512 * 1024) });
    const done = () => f.observer.statuses(id).find((s) => s.state === 'committed' || s.state === 'rolled-back' || s.state === 'failed');
    await waitFor(() => done() !== undefined, `final status after a cut in ${stage}`, 20_000);
    await dev.settled();
    expect(cut).toBe(true);
    const final = done()!;
    const boot = await slots.state();
    expect(boot.slots[boot.primary]).not.toBeNull();
    expect(boot.slots[boot.booted]).not.toBeNull();
    if (stage === 'trial' || stage === 'committing') {
      // The new slot came up and the agent ran: the cut spends the one-shot trial (unless mark-good
      // already took), the agent tries the trial once more, and the good image commits.
      expect(final.state).toBe('committed');
      expect(boot).toMatchObject({ primary: 'B', booted: 'B' });
      const retried = f.observer.statuses(id).some((s) => s.state === 'rebooting' && s.reason === 'trial-interrupted');
      const markGoodTook = stage === 'committing' && !retried;
      expect(retried || markGoodTook).toBe(true);
    } else if (stage === 'rebooting') {
      // A cut after the trial was armed spends the one-shot trial before the agent runs on the new
      // slot; a cut before the arm looks the same to the agent (a new boot on the old slot), and so
      // does a boot loop. Either outcome is honest, and the device is on a committed slot.
      expect(['committed', 'rolled-back']).toContain(final.state);
      if (final.state === 'rolled-back') {
        expect(final.reason).toBe('trial-boot-failed');
        expect(boot).toMatchObject({ primary: 'A', booted: 'A' });
      }
    } else {
      expect(final.state).toBe('committed');
      expect(boot).toMatchObject({ primary: 'B', booted: 'B' });
    }
    expect(dev.agent!.state.counters.crashes).toBeGreaterThanOrEqual(1);
  });
});

describe('power loss while the agent shuts down for its reboot', () => {
  it('a killed agent never reboots the boot that replaced it (the trial it armed runs once and commits)', async () => {
    const id = uniqueId('dev');
    const config = agentConfig(f, id);
    const factory = join(f.dir, `${id}-factory.img`);
    await writeFile(factory, image('factory').body);
    const file = await FileSlotBackend.create({ dir: join(f.dir, id, 'slots'), factoryImage: factory });
    const holder: { device?: SimulatedDevice } = {};
    let cut = false;
    // The file backend, with a bootloader that does not fence a dead process's reboot request (as the
    // simulator's memory backend does not): only the agent and its harness can keep a killed agent
    // from rebooting the device's next boot.
    const slots: PowerableSlotBackend = {
      kind: 'file',
      bootState: () => file.bootState(),
      writeInactive: (img) => file.writeInactive(img),
      armTrial: async () => {
        await file.armTrial();
        if (cut) return;
        // Armed, and the agent is going down for the reboot: cut the power a moment later, while its
        // shutdown (state save, MQTT disconnect) is still in flight.
        cut = true;
        setImmediate(() => void holder.device?.powerLoss());
      },
      markGood: () => file.markGood(),
      markBad: () => file.markBad(),
      reboot: () => Promise.resolve(),
      readDurable: () => file.readDurable(),
      writeDurable: (r) => file.writeDurable(r),
      powerOn: () => file.powerOn(),
    };
    const dev = new SimulatedDevice({ config, slots, logger: silent });
    holder.device = dev;
    f.devices.push(dev);
    await dev.start();
    await waitFor(() => dev.agent?.connected === true, 'agent connected');
    const before = (await file.state()).powerOns;
    await publishRollout(f, id, uniqueId('dep'), { artifact: serveImage(f, `${id}.img`, 'zombie-reboot', 256 * 1024) });
    const done = () => f.observer.statuses(id).find((s) => s.state === 'committed' || s.state === 'rolled-back' || s.state === 'failed');
    await waitFor(() => done() !== undefined, 'final status after a cut during the reboot', 20_000);
    await dev.settled();
    expect(cut).toBe(true);
    expect(done()!.state).toBe('committed');
    // One power-on for the cut (it boots the armed trial), none for the dead agent's reboot: the
    // trial was never interrupted, so nothing was retried.
    expect((await file.state()).powerOns).toBe(before + 1);
    expect(f.observer.statuses(id).some((s) => s.reason === 'trial-interrupted')).toBe(false);
  });
});
