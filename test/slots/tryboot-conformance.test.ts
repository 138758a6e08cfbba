import { readFile } from 'node:fs/promises';
import { slotBackendConformance } from './conformance.js';
import { createTrybootDevice } from './tryboot-harness.js';

slotBackendConformance({
  name: 'tryboot (fake device tree and boot folder, injected reboot)',
  create: async (dir, initial) => createTrybootDevice(dir, await readFile(initial.path)),
});
