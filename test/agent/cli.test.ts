/** `fleet agent` subcommands, run in-process through commander. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerAgentCommands } from '../../agent/cli.js';
import { bucketOf } from '../../protocol/bucket.js';
import { FileStateStore } from '../../agent/state-store.js';
import { initialAgentState } from '../../agent/agent-state.js';
import { writeKeyPair } from '../../firmware/keys.js';

let dir: string;
let out: string[];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-agent-cli-'));
  out = [];
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    out.push(args.join(' '));
  });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

async function fleet(...args: string[]): Promise<void> {
  const program = new Command('fleet').exitOverride();
  registerAgentCommands(program);
  await program.parseAsync(['node', 'fleet', ...args]);
}

async function config(extra: Record<string, unknown> = {}): Promise<string> {
  const path = join(dir, 'agent.json');
  await writeFile(
    path,
    JSON.stringify({ deviceId: 'pi-7', hardwareModel: 'rpi4', firmwareVersion: '1.0.0', broker: { url: 'mqtt://127.0.0.1:1' }, trustStoreDir: 'trust', dataDir: 'data', slots: { kind: 'file', dir: 'slots' }, ...extra }),
  );
  return path;
}

describe('fleet agent', () => {
  it('validate-config accepts a good config and names the bad field of a bad one', async () => {
    await writeKeyPair(join(dir, 'trust'), 'release');
    const path = await config();
    await fleet('agent', 'validate-config', '-c', path);
    expect(out.join('\n')).toContain('is valid: device pi-7 (rpi4)');
    const bad = await config({ telemetry: { interval: 'often' } });
    await expect(fleet('agent', 'validate-config', '-c', bad)).rejects.toThrow(/telemetry\.interval/);
  });

  it('validate-config names what this machine lacks to run a well-formed config, unless --syntax-only', async () => {
    // A production template on a laptop: its files do not exist here, and its trust store is empty.
    const path = await config({
      broker: { url: 'mqtts://fleet.example.com:8883', username: 'pi-7', passwordFile: '/nonexistent/fleet/broker-password' },
      health: { checks: [{ name: 'app', command: ['no-such-program-fleet-test'] }] },
    });
    const refused = fleet('agent', 'validate-config', '-c', path);
    await expect(refused).rejects.toThrow(/is well-formed, but this machine cannot run it/);
    await expect(fleet('agent', 'validate-config', '-c', path)).rejects.toThrow(/broker\.passwordFile: cannot read \/nonexistent\/fleet\/broker-password/);
    await expect(fleet('agent', 'validate-config', '-c', path)).rejects.toThrow(/trustStoreDir: cannot read trust store/);
    await expect(fleet('agent', 'validate-config', '-c', path)).rejects.toThrow(/health\.checks\[0\] \(app\): no-such-program-fleet-test is not on PATH/);
    await fleet('agent', 'validate-config', '-c', path, '--syntax-only');
    expect(out.join('\n')).toContain('is valid: device pi-7 (rpi4)');
  });

  it('topics prints the bucket and the three subscriptions', async () => {
    await fleet('agent', 'topics', '-c', await config(), '--json');
    const t = JSON.parse(out.join('\n')) as { bucket: number; subscriptions: string[] };
    expect(t.bucket).toBe(bucketOf('pi-7'));
    expect(t.subscriptions).toEqual([`fleet/v1/rollout/rpi4/${bucketOf('pi-7')}`, 'fleet/v1/devices/pi-7/commands', 'fleet/v1/flags']);
  });

  it('status reads the persisted state, and says so when there is none', async () => {
    const path = await config();
    await expect(fleet('agent', 'status', '-c', path)).rejects.toThrow(/has not run on this device yet/);
    await new FileStateStore(join(dir, 'data', 'state.json')).save(initialAgentState('1.0.0', 'A', 2));
    await fleet('agent', 'status', '-c', path);
    expect(out.join('\n')).toMatch(/booted\s+slot A \(A: 1\.0\.0, B: -\)/);
    expect(out.join('\n')).toMatch(/securityVersion 2/);
  });
});
