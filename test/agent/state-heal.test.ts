/**
 * Device state that heals: the agent daemon (`fleet agent start`, a child process on the file slot
 * backend) against a real broker. Its state file is corrupted, moved aside as the error advises, then
 * its whole data directory is lost; each time the restarted agent rebuilds the truth from the durable
 * record (the data directory's copy, then the boot environment's alone) and the bootloader — never
 * the config's factory values — and what must never go backwards (security floor, newest manifest,
 * command and status sequences) does not.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import type { StatusMessage } from '../../protocol/messages.js';
import { publishCommand, publishRollout, sendCommand, serveImage, uniqueId, useFixture, waitFor, image, type Fixture } from './harness.js';

const f = useFixture();

async function writeConfig(fx: Fixture, deviceId: string): Promise<{ path: string; dataDir: string; slotsDir: string }> {
  const base = join(fx.dir, deviceId);
  const dataDir = join(base, 'data');
  const slotsDir = join(base, 'slots');
  const path = join(fx.dir, `${deviceId}.json`);
  await writeFile(
    path,
    JSON.stringify({
      deviceId,
      hardwareModel: 'rpi4',
      firmwareVersion: '1.0.0',
      broker: { url: fx.broker.url, reconnectMin: 50, reconnectMax: 500 },
      trustStoreDir: fx.trustDir,
      dataDir,
      slots: { kind: 'file', dir: slotsDir },
      telemetry: { interval: 3_600_000 },
      health: { brokerDeadline: 5_000, trialWindow: 20_000 },
      download: { retryBase: 20, retryMax: 200, maxAttempts: 4, idleTimeout: 5_000 },
      logLevel: 'info',
    }),
  );
  return { path, dataDir, slotsDir };
}

describe('an agent whose state file is lost rebuilds the truth', () => {
  it('from the durable record and the bootloader, never going backwards', async () => {
    const id = uniqueId('heal');
    const { path, dataDir, slotsDir } = await writeConfig(f, id);
    const statuses = (): StatusMessage[] => f.observer.statuses(id);
    const hellos = (): Record<string, unknown>[] => f.observer.of(id, 'hello');
    const running: RunningProcess[] = [];
    const start = async (): Promise<RunningProcess> => {
      const before = hellos().length;
      const p = spawnFleet(['agent', 'start', '-c', path]);
      running.push(p);
      await waitFor(() => hellos().length > before || p.exit !== undefined, `agent ${id} says hello`, 60_000);
      expect(p.exit, p.output()).toBeUndefined();
      return p;
    };
    try {
      // 1. A floor-raising release (securityVersion 2) is installed and committed.
      let agent = await start();
      const dep1 = uniqueId('dep');
      await publishRollout(f, id, dep1, { firmwareVersion: '1.1.0', securityVersion: 2, artifact: serveImage(f, `${id}-110.img`, 'v110') });
      await waitFor(() => statuses().some((s) => s.deploymentId === dep1 && s.state === 'committed'), 'committed', 60_000);
      await waitFor(() => hellos().at(-1)?.['firmwareVersion'] === '1.1.0', 'hello from the new slot', 30_000);
      const seqBefore = Math.max(...statuses().map((s) => s.seq));
      const installReports = statuses().filter((s) => s.deploymentId === dep1 && s.state !== 'committed').length;
      expect((await agent.stop()).code).toBe(0);

      // 2. The state file is damaged: the agent refuses to guess and says what to do.
      await writeFile(join(dataDir, 'state.json'), '{"v":1,"seq":');
      const refused = spawnFleet(['agent', 'start', '-c', path]);
      running.push(refused);
      const exit = await refused.exited;
      expect(exit.code, refused.output()).not.toBe(0);
      expect(refused.output()).toMatch(/Move the file aside/);

      // 3. Moved aside: rebuilt from durable.json and the bootloader, not from agent.json's 1.0.0 / floor 0.
      await rename(join(dataDir, 'state.json'), join(dataDir, 'state.json.bad'));
      agent = await start();
      expect(hellos().at(-1)).toMatchObject({ firmwareVersion: '1.1.0', activeSlot: 'B', securityFloor: 2 });
      await agent.waitForLine(/rebuilt the state from the durable record/);
      // The finished deployment's retained manifest is not installed again.
      // A rollback of it would cross the floor: refused, reported with a seq above every earlier one.
      const rollback = await sendCommand(f, id, 'rollback', dep1);
      await waitFor(() => statuses().some((s) => s.reason === 'below-security-floor'), 'rollback refused below the floor', 30_000);
      const refusal = statuses().find((s) => s.reason === 'below-security-floor')!;
      expect(refusal).toMatchObject({ deploymentId: dep1, state: 'committed', toVersion: '1.1.0' });
      expect(refusal.seq).toBeGreaterThan(seqBefore);
      expect(statuses().filter((s) => s.deploymentId === dep1 && s.state !== 'committed')).toHaveLength(installReports);
      expect((await agent.stop()).code).toBe(0);

      // 4. The whole data directory is lost: the boot environment's copy alone holds the truth.
      await rm(dataDir, { recursive: true, force: true });
      agent = await start();
      expect(hellos().at(-1)).toMatchObject({ firmwareVersion: '1.1.0', activeSlot: 'B', securityFloor: 2 });
      const seqAfterRefusal = Math.max(...statuses().map((s) => s.seq));
      // The same signed rollback command again: a replay, refused without a word on the wire.
      await publishCommand(f, id, rollback);
      await agent.waitForLine(/"reason":"replayed".*command refused|command refused.*"reason":"replayed"/, 30_000);
      // An older manifest (metadataVersion below the one accepted) offered under a new deployment id.
      const stale = uniqueId('dep');
      await publishRollout(f, id, stale, { firmwareVersion: '1.2.0', issuedAt: Date.now() - 60_000, artifact: serveImage(f, `${id}-120.img`, 'v120') });
      await waitFor(() => statuses().some((s) => s.deploymentId === stale), 'the stale manifest answered', 30_000);
      expect(statuses().find((s) => s.deploymentId === stale)).toMatchObject({ state: 'rejected', reason: 'stale-manifest' });
      expect(Math.min(...statuses().filter((s) => s.deploymentId === stale).map((s) => s.seq))).toBeGreaterThan(seqAfterRefusal);
      expect(f.artifacts.requests.filter((r) => r.path === `${id}-120.img`)).toHaveLength(0);
      expect(statuses().filter((s) => s.deploymentId === dep1 && s.state !== 'committed')).toHaveLength(installReports);
      // The slots were never touched: B still holds 1.1.0 and is committed.
      const boot = JSON.parse(await readFile(join(slotsDir, 'bootloader.json'), 'utf8')) as { primary: string; booted: string; slots: { B: { sha256: string } } };
      expect(boot).toMatchObject({ primary: 'B', booted: 'B' });
      expect(boot.slots.B.sha256).toBe(image('v110').sha256);
      expect((await agent.stop()).code).toBe(0);
    } finally {
      for (const p of running) await p.stop('SIGKILL', 1_000);
    }
  }, 240_000);
});
