import { slotBackendConformance } from './conformance.js';
import { ubootHarness } from './uboot-harness.js';

slotBackendConformance(ubootHarness('uboot bootcount (Mender), env-derived booted slot', { scheme: 'bootcount' }));
slotBackendConformance(ubootHarness('uboot bootcount, bootlimit 3, kernel cmdline, redundant env', { scheme: 'bootcount', bootlimit: 3, cmdline: true, redundant: true }));
slotBackendConformance(ubootHarness('uboot boot-order (RAUC BOOT_ORDER)', { scheme: 'boot-order', cmdline: true }));
