/**
 * Maintenance windows in a time zone through the operator CLI (a child process) against a real
 * coordinator: `fleet deploy create --window … --window-tz Europe/Berlin` stores the zone with the
 * window, the engine reads the cron in that zone, and an unknown zone is refused in one line.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/index.js';
import { spawnFleet } from '../support/processes.js';
import { knownDevices, startCoordinator, tempDir, uniqueId } from './helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function run(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawnFleet(args);
  const exit = await p.exited;
  return { code: exit.code, out: p.output() };
}

/** A 6-field cron firing once a day at the wall-clock time `at` shows in `timeZone`. */
function dailyAt(at: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, hour: 'numeric', minute: 'numeric', second: 'numeric', hourCycle: 'h23' }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return `${get('second')} ${get('minute')} ${get('hour')} * * *`;
}

describe('deploy create --window-tz', () => {
  it('stores the zone, opens the window at Berlin time, and refuses an unknown zone', { timeout: 120_000 }, async () => {
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c: Coordinator = await startCoordinator(join(dir, 'data'));
    stops.push(() => c.stop());
    const dd = ['--data-dir', c.config.dataDir];
    const id = uniqueId('tz');
    await knownDevices(c, [id]);
    const img = join(dir, 'fw.img');
    writeFileSync(img, Buffer.alloc(10_000, 7));
    expect((await run(['firmware', 'upload', img, '--version', '1.5.0', '--hardware', 'rpi4', ...dd])).code).toBe(0);

    const help = await run(['deploy', 'create', '--help']);
    expect(help.out).toMatch(/--window-tz <zone>\s+IANA time zone the --window cron is read in/);

    // Opened ten minutes ago by Berlin's clock, for an hour. Read as UTC, the same cron would open an
    // hour or two from now (Berlin is UTC+1 or +2), so the wave would wait for the window.
    const cron = dailyAt(Date.now() - 10 * 60_000, 'Europe/Berlin');
    const berlin = await run(['deploy', 'create', '--firmware', '1.5.0', '--window', cron, '--window-duration', '1h', '--window-tz', 'Europe/Berlin', '--json', ...dd]);
    expect(berlin.code, berlin.out).toBe(0);
    const view = JSON.parse(berlin.out.slice(berlin.out.indexOf('{'))) as { id: string; phase: string; waitingFor: string[] };
    expect(view.waitingFor).not.toContain('window');
    expect(view.phase).toBe('rolling');
    expect((await c.deployment(view.id))!.maintenanceWindows).toEqual([{ cron, durationMs: 3_600_000, timeZone: 'Europe/Berlin' }]);

    expect((await run(['deploy', 'abort', view.id, '--no-rollback', ...dd])).code).toBe(0);

    // The same start time read in UTC (the default) has not come yet: the wave waits for the window.
    const utc = await run(['deploy', 'create', '--firmware', '1.5.0', '--window', cron, '--window-duration', '1h', '--draft', '--json', ...dd]);
    expect(utc.code, utc.out).toBe(0);
    const draft = JSON.parse(utc.out.slice(utc.out.indexOf('{'))) as { id: string };
    expect((await c.deployment(draft.id))!.maintenanceWindows).toEqual([{ cron, durationMs: 3_600_000, timeZone: 'UTC' }]);
    const started = await run(['deploy', 'start', draft.id, '--json', ...dd]);
    expect(started.code, started.out).toBe(0);
    expect(JSON.parse(started.out.slice(started.out.indexOf('{')))).toMatchObject({ phase: 'pending', waitingFor: ['window'] });

    const unknown = await run(['deploy', 'create', '--firmware', '1.5.0', '--window', '0 2 * * *', '--window-tz', 'Mars/Olympus', '--draft', ...dd]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.out).toMatch(/maintenanceWindows\.0\.timeZone: "Mars\/Olympus" is not a time zone this coordinator knows; give an IANA name such as Europe\/Berlin/);
    expect(unknown.out.trim().split('\n')).toHaveLength(1);
  });
});
