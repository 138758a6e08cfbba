/**
 * Power loss at every stage of a real install (Agent, Aedes, HTTP, file backend): the power is cut
 * the moment the agent has recorded each stage, the device boots again, and the update still ends
 * committed — or, when the cut spends the one-shot trial, honestly rolled back to the old slot, which
 * is then retried by nobody (the deployment is handled). Never an unbootable device.
 */
import { describe, expect, it } from 'vitest';
import type { JobStage } from '../../agent/agent-state.js';
import type { SimulatedDevice } from '../../agent/simulated-device.js';
import { publishRollout, serveImage, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

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
    if (stage === 'rebooting' || stage === 'trial' || stage === 'committing') {
      // A cut after the trial was armed spends the one-shot trial unless mark-good already took; a
      // cut before the arm looks the same to the agent (a new boot on the old slot). Either outcome
      // is honest, and the device is on a committed slot.
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
