/**
 * The conformance suite against the `file` backend (agent/slots/slot-backend-file.ts): its own
 * simulated bootloader (bootloader.json) plays the device.
 */
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileSlotBackend } from '../../agent/slots/slot-backend-file.js';
import { slotBackendConformance } from './conformance.js';

slotBackendConformance({
  name: 'file (simulated bootloader, one-shot trial)',
  async create(dir, initial) {
    const slotsDir = join(dir, 'slots');
    const options = { dir: slotsDir, trialBoots: 1 };
    const first = await FileSlotBackend.create({ ...options, factoryImage: initial.path });
    const statePath = join(slotsDir, 'bootloader.json');
    return {
      backend: () => FileSlotBackend.create(options),
      boot: async () => {
        await first.powerOn();
      },
      readSlot: async (slot, size) => (await readFile(first.slotPath(slot))).subarray(0, size),
      async tearWrite(slot, partial) {
        // What a power loss inside writeInactive leaves: the slot forgotten, then part of the bytes.
        const state = JSON.parse(await readFile(statePath, 'utf8')) as { slots: Record<string, unknown> };
        state.slots[slot] = null;
        await writeFile(statePath, JSON.stringify(state));
        const h = await open(first.slotPath(slot), 'w');
        await h.write(partial);
        await h.close();
      },
      trialBoots: 1,
      dispose: () => Promise.resolve(),
    };
  },
});
