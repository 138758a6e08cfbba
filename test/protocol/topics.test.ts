import { describe, expect, it } from 'vitest';
import {
  ALL_DEVICES_FILTER,
  deviceSubscriptions,
  deviceTopic,
  FLAGS_TOPIC,
  InvalidTopicError,
  parseTopic,
  rolloutTopic,
  DEVICE_CHANNELS,
} from '../../protocol/topics.js';
import { DeviceIdSchema, isValidId } from '../../protocol/ids.js';

describe('topics', () => {
  it.each(DEVICE_CHANNELS)('builds and parses the device %s topic', (channel) => {
    const topic = deviceTopic('pi-0042', channel);
    expect(topic).toBe(`fleet/v1/devices/pi-0042/${channel}`);
    expect(parseTopic(topic)).toEqual({ kind: 'device', deviceId: 'pi-0042', channel });
  });

  it.each([0, 1, 511, 1023])('builds and parses rollout bucket %i', (bucket) => {
    const topic = rolloutTopic('rpi4', bucket);
    expect(topic).toBe(`fleet/v1/rollout/rpi4/${bucket}`);
    expect(parseTopic(topic)).toEqual({ kind: 'rollout', hardwareModel: 'rpi4', bucket });
  });

  it('parses the flags topic', () => {
    expect(parseTopic(FLAGS_TOPIC)).toEqual({ kind: 'flags' });
  });

  const hostile = ['', '+', '#', 'a/b', 'a+', 'dev#1', '$SYS', 'a b', 'tab\there', 'nul\u0000', 'new\nline', '.hidden', '-x', 'é', 'x'.repeat(65)];
  it.each(hostile)('refuses the hostile id %j everywhere', (id) => {
    expect(isValidId(id)).toBe(false);
    expect(DeviceIdSchema.safeParse(id).success).toBe(false);
    expect(() => deviceTopic(id, 'status')).toThrow(InvalidTopicError);
    expect(() => rolloutTopic(id, 1)).toThrow(InvalidTopicError);
  });

  it.each([-1, 1024, 1.5, Number.NaN])('refuses bucket %d', (bucket) => {
    expect(() => rolloutTopic('rpi4', bucket)).toThrow(InvalidTopicError);
  });

  it.each([
    'fleet/v1/devices/+/status',
    'fleet/v1/devices/#',
    'fleet/v1/devices/a/unknown',
    'fleet/v1/devices/a/status/extra',
    'fleet/v2/devices/a/status',
    'fleet/v1/rollout/rpi4/1024',
    'fleet/v1/rollout/rpi4/01',
    'fleet/v1/rollout/rpi4/-1',
    'fleet/v1/rollout/+/1',
    'other/v1/flags',
    'fleet/v1/flags/x',
    ALL_DEVICES_FILTER,
  ])('parses %s as outside the scheme', (topic) => {
    expect(parseTopic(topic)).toBeNull();
  });

  it('lists exactly the three subscriptions a device may hold', () => {
    expect(deviceSubscriptions('d1', 'rpi4', 7)).toEqual([
      'fleet/v1/rollout/rpi4/7',
      'fleet/v1/devices/d1/commands',
      'fleet/v1/flags',
    ]);
  });
});
