/**
 * Liveness with Mosquitto as the broker, as an operator runs it (`fleet coordinator start --broker …
 * --broker-credentials …` as a process, Debian's Mosquitto configured as `fleet broker mosquitto-config`
 * writes it): a device is online from its hello, offline from its last will when its connection
 * drops, and offline when the broker was killed (no wills are sent then) and the device has not come
 * back since, which the coordinator learns from the broker's `$SYS/broker/uptime`.
 */
import { describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { deviceTopic } from '../../protocol/topics.js';
import { hasDynsec } from '../support/mosquitto-dynsec.js';
import { helloPayload, sayHello, startCoordinatorProcess, waitFor, type CoordinatorProcess } from '../hostile/hostile-harness.js';

const online = async (c: CoordinatorProcess, id: string): Promise<boolean> => (await c.api<{ online: boolean }>('GET', `/v1/devices/${id}`)).body.online;

/** The agent's last will: presence offline. */
const will = (id: string): { will: { topic: string; payload: Buffer; qos: 1; retain: false } } => ({
  will: { topic: deviceTopic(id, 'presence'), payload: Buffer.from(JSON.stringify({ v: 1, kind: 'presence', deviceId: id, state: 'offline' })), qos: 1, retain: false },
});

describe.skipIf(!hasDynsec)('liveness with Mosquitto', () => {
  it('online from the hello, offline from the last will, and offline after a broker crash until heard again', { timeout: 180_000 }, async () => {
    const c = await startCoordinatorProcess([], { broker: 'mosquitto' });
    const secrets = await c.provision(['pi-l1', 'pi-l2', 'pi-l3']);
    const devices = new Map<string, MqttClient>();
    for (const id of ['pi-l1', 'pi-l2', 'pi-l3']) {
      const d = await c.device(id, secrets.get(id)!, will(id));
      devices.set(id, d);
      await sayHello(c, d, id, 'rpi4');
      expect(await online(c, id)).toBe(true);
    }

    // The connection drops without a DISCONNECT: Mosquitto publishes the will.
    devices.get('pi-l1')!.stream.destroy();
    await waitFor(async () => !(await online(c, 'pi-l1')), 'pi-l1 offline from its last will');
    expect(await online(c, 'pi-l2')).toBe(true);

    // The broker is killed: no wills. pi-l2 never comes back; pi-l3 does and says hello.
    const broker = c.mosquitto!.broker;
    await broker.kill();
    await broker.restart();
    const line = JSON.parse(await c.proc.waitForLine(/the broker restarted/, 60_000)) as { offline: number };
    expect(line.offline).toBe(2);
    expect(await online(c, 'pi-l2')).toBe(false);
    // An agent says hello at every connect; until the coordinator's session is back it may not hear
    // one (a SIGKILL loses what the broker had not saved), so the device reconnects until it is heard.
    await waitFor(async () => {
      const back = await c.device('pi-l3', secrets.get('pi-l3')!, will('pi-l3'));
      await back.publishAsync(deviceTopic('pi-l3', 'hello'), helloPayload('pi-l3', 'rpi4', '1.0.1'), { qos: 1 });
      try {
        return await waitFor(async () => online(c, 'pi-l3'), 'pi-l3 heard', 3_000);
      } catch {
        return false;
      }
    }, 'pi-l3 online again', 60_000);
    expect(await online(c, 'pi-l2')).toBe(false);
  });
});
