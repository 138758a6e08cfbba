/**
 * rauc backend specifics against a real RAUC (rauc-harness.ts): progress through D-Bus and the CLI,
 * RAUC's own signature check refusing tampered and foreign bundles, and a RAUC configured to activate
 * installs anyway. Plus the status parser and an unreachable service, which need no RAUC.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RaucProgress } from '../../agent/slots/rauc-client.js';
import { createRaucBackend } from '../../agent/slots/slot-backend-rauc.js';
import { SlotError } from '../../agent/slots/slot-backend.js';
import { firmware } from './conformance.js';
import type { RaucPki } from './rauc-harness.js';
import { createRaucDevice, killAllStarted, makeBundle, makePki, raucSkipReason } from './rauc-harness.js';

const rejection = async (p: Promise<unknown>): Promise<SlotError> => {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SlotError);
  return err as SlotError;
};
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const skipReason = raucSkipReason();
if (skipReason) console.warn(`rauc tests skipped: ${skipReason}`);

describe.skipIf(skipReason !== undefined)(`rauc backend with a real RAUC${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let pki: RaucPki;
  let dir: string;
  beforeAll(async () => {
    pki = await makePki(await mkdtemp(join(tmpdir(), 'fleet-rauc-pki-')));
  });
  afterAll(async () => {
    await killAllStarted();
    await rm(pki.dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-rauc-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const transport of ['dbus', 'cli'] as const) {
    it(`installs through ${transport === 'dbus' ? 'D-Bus' : 'the CLI'}, following progress, and verifies the slot`, async () => {
      const d = await createRaucDevice(pki, dir, firmware('v1'), { transport });
      try {
        const progress: RaucProgress[] = [];
        const b = createRaucBackend(d.config, { runner: d.recorder.runner, onProgress: (p) => progress.push(p) });
        const v2 = firmware('v2');
        await b.writeInactive(await makeBundle(pki, dir, 'v2', v2));
        expect(progress.length).toBeGreaterThan(2);
        expect(progress.at(-1)!.percent).toBe(100);
        expect(progress.map((p) => p.percent)).toEqual([...progress.map((p) => p.percent)].sort((x, y) => x - y));
        expect(sha256(await d.readSlot('B', v2.length))).toBe(sha256(v2));
        expect(await b.bootState()).toEqual({ booted: 'A', primary: 'A', trial: false });
        const rauc = d.recorder.calls.filter((c) => c.file === 'rauc').map((c) => c.args.filter((a) => !a.startsWith('-c') && !a.endsWith('system.conf')).join(' '));
        if (transport === 'cli') expect(rauc).toContain(`install ${join(dir, 'v2.raucb')}`);
        else expect(rauc.some((a) => a.startsWith('install'))).toBe(false);
      } finally {
        await d.dispose();
      }
    });
  }

  it('lets RAUC refuse a tampered bundle even when its file hash was accepted, and arms nothing', async () => {
    const d = await createRaucDevice(pki, dir, firmware('v1'));
    try {
      const bundle = await makeBundle(pki, dir, 'v2', firmware('v2'));
      const bytes = await readFile(bundle.path);
      bytes[Math.floor(bytes.length / 3)]! ^= 0xff;
      await writeFile(bundle.path, bytes);
      const b = d.backend();
      const err = await rejection(b.writeInactive({ ...bundle, sha256: sha256(bytes) }));
      expect(err.code).toBe('write-failed');
      expect(err.message).toMatch(/RAUC refused bundle/);
      expect(sha256(await d.readSlot('B', 1024))).toBe(sha256(firmware('v1').subarray(0, 1024)));
      expect(await b.bootState()).toEqual({ booted: 'A', primary: 'A', trial: false });
    } finally {
      await d.dispose();
    }
  });

  it('refuses a bundle signed by a key outside RAUC keyring', async () => {
    const d = await createRaucDevice(pki, dir, firmware('v1'));
    try {
      const stranger = await makePki(join(dir, 'stranger-pki'));
      const b = d.backend();
      expect((await rejection(b.writeInactive(await makeBundle(stranger, dir, 'foreign', firmware('v2'))))).code).toBe('write-failed');
      expect(d.recorder.calls.some((c) => c.args.includes('install'))).toBe(false);
    } finally {
      await d.dispose();
    }
  });

  it('refuses to arm a slot whose last install RAUC did not record as ok', async () => {
    const d = await createRaucDevice(pki, dir, firmware('v1'));
    try {
      await d.backend().writeInactive(await makeBundle(pki, dir, 'v2', firmware('v2')));
      const statusFile = join(dir, 'rauc-data', 'central.raucs');
      const text = await readFile(statusFile, 'utf8');
      expect(text).toMatch(/\[slot\.rootfs\.1\][^[]*status=ok/);
      await writeFile(statusFile, text.replace(/(\[slot\.rootfs\.1\][^[]*)status=ok/, '$1status=failed'));
      await d.boot(); // RAUC reads its status file again
      const err = await rejection(d.backend().armTrial());
      expect(err.message).toMatch(/"failed"; install the bundle again/);
      await d.boot();
      expect(d.boots.at(-1)).toBe('A');
    } finally {
      await d.dispose();
    }
  });

  it('puts the boot order back when RAUC was configured to activate installs', async () => {
    const d = await createRaucDevice(pki, dir, firmware('v1'), { activateInstalled: true });
    try {
      const b = d.backend();
      await b.writeInactive(await makeBundle(pki, dir, 'v2', firmware('v2')));
      expect(await b.bootState()).toEqual({ booted: 'A', primary: 'A', trial: false });
      await b.reboot();
      await d.boot();
      expect(d.boots.at(-1)).toBe('A');
    } finally {
      await d.dispose();
    }
  });
});

describe('rauc backend without a RAUC service', () => {
  it('reports unparseable status output and an unreachable D-Bus service as bootloader errors', async () => {
    const garbage = createRaucBackend({ kind: 'rauc', stateFile: '/nonexistent/x.json' }, { runner: () => Promise.resolve({ code: 0, stdout: '{"booted": 3}', stderr: '' }) });
    expect((await rejection(garbage.bootState())).message).toMatch(/rauc status output is invalid/);
    const failing = createRaucBackend({ kind: 'rauc' }, { runner: () => Promise.resolve({ code: 1, stdout: '', stderr: 'rauc-CRITICAL: service not running' }) });
    expect((await rejection(failing.bootState())).message).toMatch(/service not running/);
    const status = JSON.stringify({ compatible: 'x', booted: 'A', boot_primary: 'rootfs.0', slots: [{ 'rootfs.0': { class: 'rootfs', device: '/dev/a', type: 'raw', bootname: 'A', state: 'booted' } }] });
    const noBus = createRaucBackend(
      { kind: 'rauc', bus: 'session', busAddress: 'unix:path=/nonexistent/fleet-test-bus', stateFile: '/nonexistent/x.json' },
      { runner: () => Promise.resolve({ code: 0, stdout: status, stderr: '' }) },
    );
    expect(await noBus.bootState()).toEqual({ booted: 'A', primary: 'A', trial: false });
    const err = await rejection(noBus.markGood()); // mark-good goes through D-Bus
    expect(err.code).toBe('bootloader-error');
    expect(err.message).toMatch(/D-Bus service is unreachable/);
  });
});
