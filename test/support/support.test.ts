/** The shared test supports themselves: a real Mosquitto that restarts on its port with its sessions. */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { hasMosquitto, Mosquitto } from './mosquitto.js';
import { spawnProcess } from './processes.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('spawnProcess', () => {
  it('keeps output lines, waits for one, and reports the exit', async () => {
    const p = spawnProcess('sh', ['-c', 'echo one; echo two >&2; sleep 30']);
    cleanups.push(() => p.stop('SIGKILL'));
    expect(await p.waitForLine(/two/)).toBe('two');
    expect(p.lines).toContain('one');
    expect(await p.stop()).toEqual({ code: null, signal: 'SIGTERM' });
  });
});

describe.skipIf(!hasMosquitto)('Mosquitto', () => {
  it('refuses unknown users, and keeps a persistent session across a restart on the same port', async () => {
    const broker = await Mosquitto.start({ users: { dev: 'secret', other: 'x' } });
    cleanups.push(() => broker.close());
    await expect(mqtt.connectAsync(broker.url, { username: 'dev', password: 'wrong', reconnectPeriod: 0 })).rejects.toThrow();

    const sub = await mqtt.connectAsync(broker.url, { clientId: 'sub-1', clean: false, username: 'dev', password: 'secret', reconnectPeriod: 0 });
    await sub.subscribeAsync('t/x', { qos: 1 });
    await sub.endAsync();
    await broker.restart();
    const pub = await mqtt.connectAsync(broker.url, { username: 'other', password: 'x', reconnectPeriod: 0 });
    await pub.publishAsync('t/x', 'queued', { qos: 1 });
    await pub.endAsync();
    const again = mqtt.connect(broker.url, { clientId: 'sub-1', clean: false, username: 'dev', password: 'secret', reconnectPeriod: 0, manualConnect: true });
    const got = new Promise<string>((resolve) => again.on('message', (_t, p) => resolve(p.toString())));
    again.connect();
    expect(await got).toBe('queued');
    await again.endAsync();
  });
});
