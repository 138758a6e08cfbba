/**
 * The benchmark's hand-encoded PUBLISH packets parse, with mqtt-packet (the parser Aedes uses), as
 * exactly the packet they claim to be, across the remaining-length sizes.
 */
import { describe, expect, it } from 'vitest';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { qos0Publish } from '../../simulator/bench/publish-packet.js';

function parse(bytes: Buffer): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  parser.on('packet', (p: Packet) => packets.push(p));
  parser.on('error', (err: Error) => {
    throw err;
  });
  parser.parse(bytes);
  return packets;
}

describe('QoS 0 PUBLISH encoding', () => {
  it.each([0, 100, 200, 20_000, 2_100_000])('round-trips a %i-character payload', (size) => {
    const topic = Buffer.from('fleet/v1/devices/dev-1/telemetry');
    const payload = 'x'.repeat(size - 1 > 0 ? size - 1 : 0) + (size > 0 ? 'é' : '');
    const bytes = qos0Publish(topic, payload);
    // What mqtt-packet itself would write for the same packet.
    expect(bytes.equals(mqttPacket.generate({ cmd: 'publish', topic: topic.toString(), payload: Buffer.from(payload), qos: 0, retain: false, dup: false }))).toBe(true);
    const [p, ...rest] = parse(bytes) as IPublishPacket[];
    expect(rest).toHaveLength(0);
    expect(p).toMatchObject({ cmd: 'publish', topic: topic.toString(), qos: 0, retain: false, dup: false });
    expect(Buffer.from(p!.payload).toString('utf8') === payload).toBe(true);
  });

  it('packets written back to back parse as separate messages', () => {
    const topic = Buffer.from('t');
    expect(parse(Buffer.concat([qos0Publish(topic, '{"a":1}'), qos0Publish(topic, '{"b":2}')]))).toHaveLength(2);
  });
});
