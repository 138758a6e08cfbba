/**
 * The hardware backends plug into the agent's createSlotBackend (agent/slots/create-slot-backend.ts)
 * by kind, with their own settings schema; bad settings come back as a ConfigError naming the field.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../agent/config.js';
import { createSlotBackend } from '../../agent/slots/create-slot-backend.js';
import { RaucSlotBackend } from '../../agent/slots/slot-backend-rauc.js';
import { TrybootSlotBackend } from '../../agent/slots/slot-backend-tryboot.js';
import { UbootSlotBackend } from '../../agent/slots/slot-backend-uboot.js';
import { ConfigError, errorMessage } from '../../protocol/errors.js';

const logger = pino({ level: 'silent' });
const base = {
  deviceId: 'dev-0001',
  hardwareModel: 'gw-1',
  firmwareVersion: '1.0.0',
  broker: { url: 'mqtt://127.0.0.1:1883' },
  trustStoreDir: '/etc/fleet/trust',
  dataDir: '/data/fleet',
};

describe('createSlotBackend with the hardware backends', () => {
  const cases = [
    { slots: { kind: 'uboot', slots: { A: { device: '/dev/mmcblk0p2' }, B: { device: '/dev/mmcblk0p3' } } }, type: UbootSlotBackend },
    { slots: { kind: 'uboot', scheme: 'boot-order', slots: { A: { device: '/dev/mmcblk0p2' }, B: { device: '/dev/mmcblk0p3' } } }, type: UbootSlotBackend },
    { slots: { kind: 'rauc', stateFile: '/data/fleet/rauc-trial.json' }, type: RaucSlotBackend },
    { slots: { kind: 'tryboot', slots: { A: { device: '/dev/mmcblk0p2' }, B: { device: '/dev/mmcblk0p3' } } }, type: TrybootSlotBackend },
  ];
  for (const c of cases) {
    it(`builds ${c.slots.kind}${'scheme' in c.slots ? ` (${c.slots.scheme})` : ''} from agent.json`, async () => {
      const config = parseAgentConfig({ ...base, slots: c.slots });
      const backend = await createSlotBackend(config.slots, logger);
      expect(backend).toBeInstanceOf(c.type);
      expect(backend.kind).toBe(c.slots.kind);
    });
  }

  it('refuses bad backend settings when agent.json loads, naming the field', () => {
    // The backend schemas are part of the agent config, so nothing half-configured reaches a factory.
    let err: unknown;
    try {
      parseAgentConfig({ ...base, slots: { kind: 'tryboot', slots: { A: { device: '/dev/a' } } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(errorMessage(err)).toMatch(/slots\.slots\.B/);
  });
});
