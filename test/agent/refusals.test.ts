/**
 * Eligibility and integrity: manifests the device must refuse (and report as rejected, downloading
 * nothing), and a tampered image that must never reach a slot. Real Aedes and HTTP on 127.0.0.1.
 */
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { generateSigningKey } from '../../firmware/keys.js';
import { publishRollout, serveImage, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

async function start(overrides: Parameters<typeof startDevice>[2] = {}) {
  const id = uniqueId('dev');
  const d = await startDevice(f, id, overrides);
  f.devices.push(d.dev);
  return { id, ...d };
}

const final = (id: string) => f.observer.statuses(id).find((s) => ['rejected', 'failed', 'committed'].includes(s.state));

describe('manifests the device refuses', () => {
  const cases: { name: string; reason: string; setup: (art: { url: string; size: number; sha256: string }) => Parameters<typeof publishRollout>[3]; unknownKey?: boolean; floor?: number }[] = [
    { name: 'signed by an unknown key', reason: 'unknown-key', setup: (artifact) => ({ artifact }), unknownKey: true },
    { name: 'expired', reason: 'expired', setup: (artifact) => ({ artifact, issuedAt: Date.now() - 3 * 24 * 3600_000, ttlMs: 24 * 3600_000 }) },
    { name: 'for other hardware', reason: 'wrong-hardware', setup: (artifact) => ({ artifact, hardware: ['rpi3'] }) },
    { name: 'below the security floor', reason: 'below-security-floor', setup: (artifact) => ({ artifact, securityVersion: 1 }), floor: 5 },
    { name: 'a downgrade that is not a signed rollback', reason: 'version-not-installable', setup: (artifact) => ({ artifact, firmwareVersion: '0.9.0' }) },
    { name: 'current version outside the range', reason: 'version-not-installable', setup: (artifact) => ({ artifact, installableOver: '>=2.0.0' }) },
  ];

  it.each(cases)('refuses a manifest $name with reason $reason, downloading nothing', async (c) => {
    const { id, slots, dev } = await start(c.floor !== undefined ? { securityFloor: c.floor } : {});
    const artifact = serveImage(f, `${id}.img`, 'new');
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, c.setup(artifact), c.unknownKey ? generateSigningKey() : f.key);
    await waitFor(() => final(id) !== undefined, 'a final status');
    expect(final(id)).toMatchObject({ state: 'rejected', reason: c.reason, deploymentId: dep, fromVersion: '1.0.0' });
    expect(f.artifacts.requests).toHaveLength(0);
    expect((await slots.state()).slots.B).toBeNull();
    expect(dev.agent!.state.handled).toContain(dep);
  });

  it('refuses a redelivered rejected rollout only once (retained messages come back on reconnect)', async () => {
    const { id, dev } = await start();
    const artifact = serveImage(f, `${id}.img`, 'new');
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact, hardware: ['rpi3'] });
    await waitFor(() => final(id) !== undefined, 'a final status');
    await dev.powerCycle();
    await waitFor(() => dev.agent?.connected === true, 'reconnected');
    await waitFor(() => f.observer.of(id, 'hello').length >= 2, 'second hello');
    await dev.agent!.idle();
    // The restart re-sends the last status with the same seq; no second decision is made.
    const rejected = f.observer.statuses(id).filter((s) => s.state === 'rejected');
    expect(new Set(rejected.map((s) => s.seq)).size).toBe(1);
  });
});

describe('image integrity', () => {
  it('refuses a tampered image before any slot write', async () => {
    const { id, slots, dev } = await start();
    const artifact = serveImage(f, `${id}.img`, 'genuine');
    // The server now serves different bytes of the same size under the signed URL.
    serveImage(f, `${id}.img`, 'tampered');
    const before = await readFile(slots.slotPath('A'));
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact });
    await waitFor(() => final(id) !== undefined, 'a final status');
    expect(final(id)).toMatchObject({ state: 'failed', reason: 'hash-mismatch' });
    const boot = await slots.state();
    expect(boot.slots.B).toBeNull();
    expect(boot.trial).toBeNull();
    expect(boot.powerOns).toBe(1);
    expect(await readFile(slots.slotPath('A'))).toEqual(before);
    expect(f.observer.statuses(id).map((s) => s.state)).not.toContain('installing');
    expect(dev.agent!.state.slotVersions).toEqual({ A: '1.0.0' });
  });

  it('refuses an image larger than the manifest says', async () => {
    const { id, slots } = await start();
    const artifact = serveImage(f, `${id}.img`, 'small', 1024);
    serveImage(f, `${id}.img`, 'big', 4096);
    await publishRollout(f, id, uniqueId('dep'), { artifact });
    await waitFor(() => final(id) !== undefined, 'a final status');
    expect(final(id)).toMatchObject({ state: 'failed', reason: 'size-mismatch' });
    expect((await slots.state()).slots.B).toBeNull();
  });
});
