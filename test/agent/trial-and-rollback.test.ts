/**
 * The trial and the way back: a failing health check falls back to the old slot, a firmware that
 * does not boot is reported honestly, and a signed rollback command returns to the previous slot.
 * Real Aedes and HTTP on 127.0.0.1, the file backend's simulated bootloader, reboots by the harness.
 */
import { describe, expect, it } from 'vitest';
import { publishCommand, publishRollout, sendCommand, serveImage, startDevice, uniqueId, useFixture, waitFor } from './harness.js';

const f = useFixture();

const last = (id: string) => f.observer.statuses(id).at(-1);
const has = (id: string, state: string) => f.observer.statuses(id).some((s) => s.state === state);

describe('trial', () => {
  it('a failing health check marks the trial bad and falls back to the old slot', async () => {
    const id = uniqueId('dev');
    const { dev, slots } = await startDevice(f, id, {
      health: { brokerDeadline: 5_000, trialWindow: 20_000, checks: [{ name: 'app', command: ['/bin/sh', '-c', 'echo app down >&2; exit 3'], timeout: 5_000 }] },
    });
    f.devices.push(dev);
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact: serveImage(f, `${id}.img`, 'bad-app'), securityVersion: 4 });
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back status');
    await dev.settled();
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'health-check-failed', fromVersion: '1.1.0', toVersion: '1.0.0', deploymentId: dep });
    expect(last(id)!.detail).toContain('app down');
    const states = f.observer.statuses(id).map((s) => s.state);
    expect(states).toEqual(expect.arrayContaining(['trial', 'rolling-back', 'rolled-back']));
    expect(states).not.toContain('committed');
    const boot = await slots.state();
    expect(boot).toMatchObject({ primary: 'A', booted: 'A', trial: null });
    expect(dev.agent!.state.securityFloor).toBe(0);
    expect(dev.agent!.state.handled).toContain(dep);
  });

  it('a firmware that never comes up: the bootloader falls back and the device says so', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id, {}, {
      // Slot B's image hangs at boot: the watchdog resets and the one-shot trial is spent.
      bootOutcome: (boot) => (boot.booted === 'B' ? 'reset' : 'up'),
    });
    f.devices.push(dev);
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact: serveImage(f, `${id}.img`, 'brick') });
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back status');
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'trial-boot-failed', toVersion: '1.0.0' });
    expect(has(id, 'committed')).toBe(false);
    expect(dev.bricked).toBe(false);
    await dev.settled();
    // The hello after the fallback tells a restarted coordinator the same, reason included (it may
    // arrive before the status, and a reasonless "rolled-back" would read as an ordered rollback).
    await waitFor(() => f.observer.of(id, 'hello').some((h) => (h['update'] as { state?: string } | undefined)?.state === 'rolled-back'), 'hello with the outcome');
    const update = f.observer.of(id, 'hello').map((h) => h['update'] as { state?: string; reason?: string } | undefined).find((u) => u?.state === 'rolled-back');
    expect(update?.reason).toBe('trial-boot-failed');
  });
});

describe('rollback command', () => {
  it('returns a committed device to the previous slot and reports the restored version', async () => {
    const id = uniqueId('dev');
    const { dev, slots } = await startDevice(f, id);
    f.devices.push(dev);
    const dep = uniqueId('dep');
    await publishRollout(f, id, dep, { artifact: serveImage(f, `${id}.img`, 'v110') });
    await waitFor(() => has(id, 'committed'), 'committed');
    await dev.settled();
    await waitFor(() => dev.agent?.connected === true, 'reconnected');
    expect((await slots.state()).primary).toBe('B');
    const downloadsBefore = f.artifacts.requests.length;

    await sendCommand(f, id, 'rollback', dep);
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back');
    await dev.settled();
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'rollback-command', fromVersion: '1.1.0', toVersion: '1.0.0', deploymentId: dep });
    expect(await slots.state()).toMatchObject({ primary: 'A', booted: 'A' });
    // Instant: the other slot still held the previous firmware, nothing was downloaded.
    expect(f.artifacts.requests.length).toBe(downloadsBefore);
    expect(dev.agent!.state.slotVersions).toEqual({ A: '1.0.0', B: '1.1.0' });
    // The retained rollout comes back on every reconnect; the device does not reinstall it.
    await waitFor(() => dev.agent?.connected === true, 'reconnected');
    await dev.agent!.idle();
    expect(f.observer.statuses(id).filter((s) => s.state === 'downloading' && s.seq > last(id)!.seq)).toHaveLength(0);
  });

  it('refuses a replayed command', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id);
    f.devices.push(dev);
    // Counted by the agent, not inferred from hellos: the connect's own hello may land after any
    // count taken here, and a reconnect on a loaded machine sends another.
    const sent = await sendCommand(f, id, 'report-now', undefined, 'cmd-once');
    await waitFor(() => dev.agent!.counts.acceptedCommands === 1, 'report-now accepted');
    await publishCommand(f, id, sent);
    await waitFor(() => dev.agent!.counts.rejectedCommands === 1, 'replay refused');
    expect(dev.agent!.counts.acceptedCommands).toBe(1);
  });
});

describe('trial deadlines', () => {
  it('a trial agent that cannot reach the broker in time goes back and reports broker-unreachable', async () => {
    const id = uniqueId('dev');
    let agents = 0;
    const { default: mqtt } = await import('mqtt');
    const { dev } = await startDevice(
      f,
      id,
      { health: { brokerDeadline: 300, trialWindow: 20_000 } },
      {
        // The second agent (the one on the trial slot) has a broken network stack.
        connect: (opts) => mqtt.connect(++agents === 2 ? { ...opts, host: '127.0.0.1', hostname: '127.0.0.1', port: 1 } : opts),
      },
    );
    f.devices.push(dev);
    await publishRollout(f, id, uniqueId('dep'), { artifact: serveImage(f, `${id}.img`, 'no-net') });
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back');
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'broker-unreachable', toVersion: '1.0.0' });
    await dev.settled();
    expect(dev.agent!.state.booted).toBe('A');
  });

  it('a trial not committed within its window goes back with trial-timeout', async () => {
    const id = uniqueId('dev');
    const { dev } = await startDevice(f, id, {
      health: { brokerDeadline: 5_000, trialWindow: 400, checks: [{ name: 'slow', command: ['sleep', '5'], timeout: 30_000 }] },
    });
    f.devices.push(dev);
    await publishRollout(f, id, uniqueId('dep'), { artifact: serveImage(f, `${id}.img`, 'slow') });
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back');
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'trial-timeout' });
  });
});

describe('watchdog and reboot command', () => {
  it("the harness's hardware watchdog resets a trial that hangs, and the bootloader falls back", async () => {
    const id = uniqueId('dev');
    const { dev, slots } = await startDevice(f, id, {}, {
      // The agent on the trial slot hangs in its health checks (never resolves).
      healthChecks: { run: () => new Promise(() => undefined) },
      trialWatchdogMs: 300,
    });
    f.devices.push(dev);
    await publishRollout(f, id, uniqueId('dep'), { artifact: serveImage(f, `${id}.img`, 'hang') });
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back after the watchdog reset');
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'trial-boot-failed' });
    // The first reset looks like any interrupted trial and is retried once; the second one counts.
    expect(f.observer.statuses(id).filter((s) => s.state === 'rebooting' && s.reason === 'trial-interrupted')).toHaveLength(1);
    await dev.settled();
    expect(await slots.state()).toMatchObject({ primary: 'A', booted: 'A' });
  });

  it('a signed reboot command reboots the device, which comes back on the same slot', async () => {
    const id = uniqueId('dev');
    const { dev, slots } = await startDevice(f, id);
    f.devices.push(dev);
    const before = (await slots.state()).powerOns;
    await sendCommand(f, id, 'reboot');
    await waitFor(() => dev.powerOns === 1, 'power cycle');
    await dev.settled();
    await waitFor(() => dev.agent?.connected === true, 'reconnected');
    expect((await slots.state()).powerOns).toBe(before + 1);
    expect(dev.agent!.state.counters).toMatchObject({ reboots: 1, crashes: 0 });
    expect(dev.agent!.state.booted).toBe('A');
  });
});

describe('bootloader errors', () => {
  it('a failing mark-bad still reboots, and the one-shot trial falls back by itself', async () => {
    const { FileSlotBackend } = await import('../../agent/slots/slot-backend-file.js');
    const { SimulatedDevice } = await import('../../agent/simulated-device.js');
    const { agentConfig, image, silent } = await import('./harness.js');
    const { writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const id = uniqueId('dev');
    const config = agentConfig(f, id, {
      health: { brokerDeadline: 5_000, trialWindow: 20_000, checks: [{ name: 'fails', command: ['false'], timeout: 5_000 }] },
    });
    const factory = join(f.dir, `${id}-factory.img`);
    await writeFile(factory, image('factory').body);
    const inner = await FileSlotBackend.create({ dir: join(f.dir, id, 'slots'), factoryImage: factory });
    let markBadCalls = 0;
    // The bootloader environment cannot be written when the agent marks the trial bad.
    const slots = {
      kind: inner.kind,
      bootState: () => inner.bootState(),
      writeInactive: (i: Parameters<typeof inner.writeInactive>[0]) => inner.writeInactive(i),
      armTrial: () => inner.armTrial(),
      markGood: () => inner.markGood(),
      markBad: () => {
        markBadCalls++;
        return Promise.reject(new Error('environment write failed'));
      },
      reboot: () => inner.reboot(),
      readDurable: () => inner.readDurable(),
      writeDurable: (r: string) => inner.writeDurable(r),
      powerOn: () => inner.powerOn(),
    };
    const dev = new SimulatedDevice({ config, slots, logger: silent });
    f.devices.push(dev);
    await dev.start();
    await waitFor(() => dev.agent?.connected === true, 'connected');
    await publishRollout(f, id, uniqueId('dep'), { artifact: serveImage(f, `${id}.img`, 'markbad') });
    await waitFor(() => has(id, 'rolled-back'), 'rolled-back');
    expect(markBadCalls).toBeGreaterThanOrEqual(1);
    expect(last(id)).toMatchObject({ state: 'rolled-back', reason: 'health-check-failed' });
    expect(await inner.state()).toMatchObject({ primary: 'A', booted: 'A' });
  });
});
