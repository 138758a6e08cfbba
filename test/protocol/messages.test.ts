import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CommandMessageSchema,
  CoordinatorMessageSchema,
  DeviceMessageSchema,
  FlagsMessageSchema,
  HelloMessageSchema,
  PresenceMessageSchema,
  RolloutCancelMessageSchema,
  RolloutMessageSchema,
  RolloutTopicMessageSchema,
  StatusMessageSchema,
  TelemetryMessageSchema,
} from '../../protocol/messages.js';
import { encodeMessage, parsePayload, parseValue } from '../../protocol/parse.js';
import { CommandSchema, ManifestSchema } from '../../protocol/signed.js';
import { UnsupportedVersionError, ValidationError } from '../../protocol/errors.js';

const dir = join(import.meta.dirname, '../fixtures/messages/v1');
const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(dir, name), 'utf8')) as Record<string, unknown>;

const schemaByKind = {
  hello: HelloMessageSchema,
  status: StatusMessageSchema,
  telemetry: TelemetryMessageSchema,
  presence: PresenceMessageSchema,
  rollout: RolloutMessageSchema,
  'rollout-cancel': RolloutCancelMessageSchema,
  command: CommandMessageSchema,
  flags: FlagsMessageSchema,
} as const;

describe('golden v1 fixtures (old agents must keep parsing)', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  it('covers every message kind', () => {
    const kinds = new Set(files.map((f) => fixture(f)['kind']));
    expect([...kinds].sort()).toEqual(Object.keys(schemaByKind).sort());
  });

  it.each(files)('%s parses with its schema and its direction union', (file) => {
    const raw = readFileSync(join(dir, file));
    const kind = fixture(file)['kind'] as keyof typeof schemaByKind;
    const own = parsePayload(schemaByKind[kind], raw, file);
    expect(own.ok).toBe(true);
    const union = ['rollout', 'rollout-cancel', 'command', 'flags'].includes(kind) ? CoordinatorMessageSchema : DeviceMessageSchema;
    const parsed = parsePayload(union, raw, file);
    expect(parsed.ok && parsed.value.kind).toBe(kind);
  });

  it('the rollout topic carries a manifest or a cancel, nothing else', () => {
    for (const file of ['rollout.json', 'rollout-cancel.json']) {
      const parsed = parsePayload(RolloutTopicMessageSchema, readFileSync(join(dir, file)), file);
      expect(parsed.ok && parsed.value.kind).toBe(fixture(file)['kind']);
    }
    expect(parsePayload(RolloutTopicMessageSchema, readFileSync(join(dir, 'flags.json')), 'flags').ok).toBe(false);
    expect(parseValue(RolloutCancelMessageSchema, { ...fixture('rollout-cancel.json'), deploymentId: '' }, 'cancel').ok).toBe(false);
  });

  it('round-trips through encodeMessage', () => {
    const hello = fixture('hello.json');
    const parsed = parsePayload(HelloMessageSchema, encodeMessage(hello), 'hello');
    expect(parsed.ok && parsed.value).toEqual(hello);
  });

  it('fills defaults for optional collections an older agent leaves out', () => {
    const minimal = { ...fixture('telemetry.json') };
    delete minimal['custom'];
    delete minimal['logs'];
    const parsed = parseValue(TelemetryMessageSchema, minimal, 'telemetry');
    expect(parsed.ok && parsed.value.custom).toEqual({});
    expect(parsed.ok && parsed.value.logs).toEqual([]);
  });
});

describe('freshness fields (metadataVersion, command seq) keep older agents parsing', () => {
  // The signed parts as an agent built before the fields knew them: zod drops unknown keys, and the
  // signature covers the canonical JSON of the unparsed `signed`, so the fields travel untouched.
  const OldManifestSchema = ManifestSchema.omit({ metadataVersion: true });
  const OldCommandSchema = CommandSchema.omit({ seq: true });

  it('an older agent parses a manifest with metadataVersion and a command with seq', () => {
    const rollout = fixture('rollout-fresh.json') as { manifest: { signed: unknown } };
    const command = fixture('command-sequenced.json') as { command: { signed: unknown } };
    expect(OldManifestSchema.safeParse(rollout.manifest.signed).success).toBe(true);
    expect(OldCommandSchema.safeParse(command.command.signed).success).toBe(true);
  });

  it('a current agent reads the fields, and still parses documents without them', () => {
    const rollout = fixture('rollout-fresh.json') as { manifest: { signed: unknown } };
    const command = fixture('command-sequenced.json') as { command: { signed: unknown } };
    expect(ManifestSchema.parse(rollout.manifest.signed).metadataVersion).toBe(1795694400002);
    expect(CommandSchema.parse(command.command.signed).seq).toBe(1795694400001);
    const old = fixture('rollout.json') as { manifest: { signed: unknown } };
    expect(ManifestSchema.parse(old.manifest.signed).metadataVersion).toBeUndefined();
    expect(CommandSchema.parse((fixture('command.json') as { command: { signed: unknown } }).command.signed).seq).toBeUndefined();
  });

  it('statuses carry the new reasons (stale-manifest, a rollback refused below the floor)', () => {
    expect(StatusMessageSchema.parse(fixture('status-stale-manifest.json')).reason).toBe('stale-manifest');
    expect(StatusMessageSchema.parse(fixture('status-rollback-refused.json'))).toMatchObject({ state: 'committed', reason: 'below-security-floor' });
  });
});

describe('bad inputs get precise errors, never throws', () => {
  it('refuses a payload that is not JSON', () => {
    const r = parsePayload(StatusMessageSchema, Buffer.from('{"v":1,'), 'status');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toBeInstanceOf(ValidationError);
    expect(!r.ok && r.error.message).toMatch(/not JSON/);
  });

  it('refuses an unknown protocol version with its own error', () => {
    const r = parseValue(StatusMessageSchema, { ...fixture('status.json'), v: 2 }, 'status');
    expect(!r.ok && r.error).toBeInstanceOf(UnsupportedVersionError);
    expect(!r.ok && r.error.code).toBe('unsupported-version');
  });

  it.each([
    ['status.json', { state: 'exploded' }, 'state'],
    ['status.json', { deviceId: 'a/b' }, 'deviceId'],
    ['status.json', { seq: -1 }, 'seq'],
    ['status.json', { toVersion: 'v1' }, 'toVersion'],
    ['status.json', { reason: 'because' }, 'reason'],
    ['hello.json', { bucket: 1024 }, 'bucket'],
    ['hello.json', { activeSlot: 'C' }, 'activeSlot'],
    ['telemetry.json', { metrics: { cpuPct: 140 } }, 'metrics.cpuPct'],
    ['telemetry.json', { logs: new Array(21).fill('x') }, 'logs'],
    ['telemetry.json', { logs: ['x'.repeat(513)] }, 'logs.0'],
    ['telemetry.json', { custom: { 'bad key!': 1 } }, 'custom'],
    ['telemetry.json', { custom: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, i])) }, 'custom: at most 64 custom metrics'],
    ['telemetry.json', { custom: { big: 1.5e15 } }, 'custom.big'],
    ['telemetry.json', { custom: { small: -1.5e15 } }, 'custom.small'],
    ['telemetry.json', { custom: { s: '1' } }, 'custom.s'],
    ['telemetry.json', { custom: [1, 2] }, 'custom'],
    ['presence.json', { state: 'asleep' }, 'state'],
    ['rollout.json', { manifest: { signed: {}, signatures: [] } }, 'manifest.signatures'],
    ['flags.json', { version: 1.5 }, 'version'],
  ] as const)('%s with %j names %s', (file, patch, path) => {
    const kind = fixture(file)['kind'] as keyof typeof schemaByKind;
    const r = parseValue(schemaByKind[kind], { ...fixture(file), ...patch }, kind);
    expect(r.ok).toBe(false);
    expect(!r.ok && (r.error as ValidationError).issues.some((i) => i.startsWith(path))).toBe(true);
  });

  it('accepts custom metrics at their bounds: 64 of them, values of +-1e15', () => {
    const custom = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`m.${i}`, i % 2 ? 1e15 : -1e15]));
    const r = parseValue(TelemetryMessageSchema, { ...fixture('telemetry.json'), custom }, 'telemetry');
    expect(r.ok && Object.keys(r.value.custom)).toHaveLength(64);
  });

  it('refuses a message of another kind in a union', () => {
    const r = parseValue(DeviceMessageSchema, fixture('rollout.json'), 'device message');
    expect(r.ok).toBe(false);
  });
});
