import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { MemorySlotBackend } from '../../simulator/memory-slot-backend.js';

const img = (text: string) => {
  const bytes = Buffer.from(text);
  return { bytes, ref: { path: `/virtual/${text}`, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } };
};
const factory = img('factory-1.0.0');
const next = img('release-1.1.0');

function backend(opts: { onWrite?: () => Promise<void> } = {}) {
  let reboots = 0;
  const b = new MemorySlotBackend({
    factoryImage: { sha256: factory.ref.sha256, size: factory.ref.size },
    onReboot: () => reboots++,
    readImage: (i) => Promise.resolve(i.path === next.ref.path ? next.bytes : Buffer.from('tampered')),
    ...(opts.onWrite ? { onWrite: opts.onWrite } : {}),
  });
  return { b, reboots: () => reboots };
}

describe('memory slot backend', () => {
  it('installs, trial-boots once, commits', async () => {
    const { b, reboots } = backend();
    expect(await b.bootState()).toMatchObject({ booted: 'A', primary: 'A', trial: false, bootCount: 0 });
    await b.writeInactive(next.ref);
    expect(b.slots.B).toEqual({ sha256: next.ref.sha256, size: next.ref.size, intact: true });
    expect(b.slots.A!.sha256).toBe(factory.ref.sha256);
    await b.armTrial();
    await b.reboot();
    expect(reboots()).toBe(1);
    expect(b.boot()).toMatchObject({ ok: true, slot: 'B', trial: true });
    expect(await b.bootState()).toMatchObject({ booted: 'B', primary: 'A', trial: true });
    await b.markGood();
    await b.markGood();
    expect(await b.bootState()).toMatchObject({ booted: 'B', primary: 'B', trial: false });
    expect(b.boot()).toMatchObject({ ok: true, slot: 'B', trial: false });
  });

  it('falls back to the primary when a trial is not committed (one-shot)', async () => {
    const { b } = backend();
    await b.writeInactive(next.ref);
    await b.armTrial();
    expect(b.boot()).toMatchObject({ slot: 'B', trial: true });
    // crash or power loss in the trial: next boot is the old slot
    expect(b.boot()).toMatchObject({ slot: 'A', trial: false });
    expect(b.running()!.sha256).toBe(factory.ref.sha256);
  });

  it('markBad disarms so the next boot is the primary', async () => {
    const { b } = backend();
    await b.writeInactive(next.ref);
    await b.armTrial();
    b.boot();
    await b.markBad();
    expect(b.boot()).toMatchObject({ slot: 'A', trial: false });
  });

  it('rolls back after a commit by a trial of the other slot', async () => {
    const { b } = backend();
    await b.writeInactive(next.ref);
    await b.armTrial();
    b.boot();
    await b.markGood();
    await b.armTrial();
    expect(b.boot()).toMatchObject({ slot: 'A', trial: true });
    await b.markGood();
    expect(await b.bootState()).toMatchObject({ booted: 'A', primary: 'A', trial: false });
  });

  it('refuses a read-back mismatch and never arms a broken slot', async () => {
    const { b } = backend();
    await expect(b.writeInactive({ ...next.ref, path: '/virtual/other' })).rejects.toMatchObject({ code: 'readback-failed' });
    await expect(b.armTrial()).rejects.toMatchObject({ code: 'bootloader-error' });
    expect(b.boot()).toMatchObject({ ok: true, slot: 'A' });
  });

  it('a power loss mid-write leaves the slot corrupt and the device booting the old slot', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { b } = backend({ onWrite: () => gate });
    const write = b.writeInactive(next.ref);
    b.powerLoss();
    release();
    await expect(write).rejects.toMatchObject({ code: 'write-failed' });
    expect(b.slots.B!.intact).toBe(false);
    expect(b.boot()).toMatchObject({ ok: true, slot: 'A', trial: false });
  });

  it('reports no bootable slot only when the primary itself is broken', () => {
    const { b } = backend();
    b.slots.A!.intact = false;
    expect(b.boot()).toEqual({ ok: false, reason: 'no-bootable-slot' });
  });
});
