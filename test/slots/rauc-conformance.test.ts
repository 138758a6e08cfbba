/**
 * The conformance suite against a real RAUC (see rauc-harness.ts). Skips, saying why, where the machine
 * lacks RAUC, D-Bus, squashfs-tools, root or loop devices.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { slotBackendConformance } from './conformance.js';
import type { RaucPki } from './rauc-harness.js';
import { createRaucDevice, killAllStarted, makeBundle, makePki, raucSkipReason } from './rauc-harness.js';

const skipReason = raucSkipReason();
let pki: Promise<RaucPki> | undefined;
const getPki = (): Promise<RaucPki> => (pki ??= mkdtemp(join(tmpdir(), 'fleet-rauc-pki-')).then((d) => makePki(d)));
afterAll(async () => {
  await killAllStarted();
  if (pki) await rm((await pki).dir, { recursive: true, force: true });
});

slotBackendConformance({
  name: 'rauc (real rauc service on a private D-Bus, plain bundles, raw file slots, custom bootloader)',
  skipReason,
  create: async (dir, initial) => createRaucDevice(await getPki(), dir, await readFile(initial.path)),
  image: async (dir, name, content) => makeBundle(await getPki(), dir, name, content),
});
