/**
 * The slot backend conformance suite (test/slots/conformance.ts) against the simulator's in-memory
 * backend: it must keep the same semantics as the file backend it stands in for.
 */
import { readFile } from 'node:fs/promises';
import { MemorySlotBackend } from '../../simulator/memory-slot-backend.js';
import { slotBackendConformance } from '../slots/conformance.js';

slotBackendConformance({
  name: 'memory (simulator, one-shot trial)',
  async create(_dir, initial) {
    const backend = new MemorySlotBackend({
      factoryImage: { sha256: initial.sha256, size: initial.size },
      factoryBytes: await readFile(initial.path),
      keepBytes: true,
      onReboot: () => undefined,
    });
    return {
      // One hardware, one backend: the agent's view after a boot is the same object's state.
      backend: () => backend,
      boot: () => {
        const result = backend.boot();
        if (!result.ok) throw new Error(result.reason);
        return Promise.resolve();
      },
      readSlot: (slot, size) => Promise.resolve((backend.slots[slot]?.bytes ?? Buffer.alloc(0)).subarray(0, size)),
      tearWrite(slot, partial) {
        backend.slots[slot] = { sha256: '0'.repeat(64), size: partial.length, intact: false, bytes: partial };
        return Promise.resolve();
      },
      trialBoots: 1,
      dispose: () => Promise.resolve(),
    };
  },
});
