/**
 * The benchmark load generator's telemetry packets, encoded by hand: an MQTT 3.1.1 PUBLISH at QoS 0,
 * not retained, not a duplicate. Pure.
 */

/** Fixed header (0x30), remaining length (1-4 bytes), topic length and topic, payload (UTF-8). */
export function qos0Publish(topic: Buffer, payload: string): Buffer {
  const payloadBytes = Buffer.byteLength(payload);
  let remaining = 2 + topic.length + payloadBytes;
  if (remaining > 268_435_455) throw new RangeError(`an MQTT packet holds at most 268,435,455 bytes after its header, not ${remaining}`);
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4;
  const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  packet[0] = 0x30;
  let o = 1;
  do {
    let byte = remaining % 128;
    remaining = Math.floor(remaining / 128);
    if (remaining > 0) byte |= 0x80;
    packet[o++] = byte;
  } while (remaining > 0);
  packet.writeUInt16BE(topic.length, o);
  o += 2;
  o += topic.copy(packet, o);
  packet.write(payload, o);
  return packet;
}
