/**
 * The dashboard in a real browser (Debian's headless Chromium driven by playwright-core) against a
 * real coordinator in its own process and real agents on 127.0.0.1: an operator logs in, starts a
 * rollout and watches it progress live, opens the gate decision with canary against control, aborts
 * with a reason and sees the rollback complete; a viewer sees no action and is refused one anyway.
 * Both on a laptop screen and a phone's. Screenshots go to FLEET_SCREENSHOT_DIR when it is set.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { bucketOf, bucketRank, bucketsForPercent } from '../../protocol/bucket.js';
import { spawnFleet, type RunningProcess } from '../support/processes.js';
import { tempDir, waitFor } from '../coordinator/helpers.js';
import { firmwareImage, overApi, startFleet, type Fleet } from '../coordinator/fleet-harness.js';
import { consoleBuild } from './console-build.js';

const CHROMIUM = '/usr/bin/chromium';
const LAPTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };
const DEVICES = 6;

interface Running {
  url: string;
  token: string;
  coordinator: RunningProcess;
  fleet: Fleet;
  browser: Browser;
  shots: string;
  cleanup: () => void;
}

let r: Running | undefined;

async function api<T>(method: string, path: string, body?: unknown, raw?: Buffer): Promise<T> {
  const res = await fetch(`${r!.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${r!.token}`,
      ...(raw ? { 'content-type': 'application/octet-stream' } : body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(raw ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function logIn(context: BrowserContext, user: string, password: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${r!.url}/`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('form button[type=submit]');
  await page.locator(`.user:has-text("${user}")`).waitFor({ timeout: 15_000 });
  await page.locator('.live[data-live=live]').waitFor({ timeout: 15_000 });
  return page;
}

async function confirmWithReason(page: Page, action: string, reason: string): Promise<void> {
  await page.click(`button[data-action=${action}]`);
  const dialog = page.locator('dialog.confirm[open]');
  await dialog.waitFor();
  await dialog.locator('textarea[name=reason]').fill(reason);
  await dialog.locator('button[type=submit]').click();
  await page.locator('dialog.confirm[open]').waitFor({ state: 'detached', timeout: 15_000 }).catch(async () => {
    await page.locator('dialog.confirm:not([open])').waitFor({ timeout: 15_000 });
  });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(r!.shots, `${name}.png`), fullPage: true });
}

/** No horizontal scrolling: the page fits the viewport's width. */
async function fitsWidth(page: Page): Promise<boolean> {
  // A string: evaluated in the page (this file is compiled without the DOM's types).
  return page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth + 1');
}

const skip = !existsSync(CHROMIUM);
if (skip) console.log(`dashboard browser test skipped: ${CHROMIUM} is missing (Debian package chromium; .ci/apt-packages.txt installs it)`);

describe.skipIf(skip)('the dashboard in a real browser', () => {
  beforeAll(async () => {
    const { dir, cleanup } = tempDir('fleet-dashboard-');
    const build = await consoleBuild();
    const dataDir = join(dir, 'coordinator');
    const coordinator = spawnFleet(['coordinator', 'start', '--data-dir', dataDir, '--http-port', '0', '--mqtt-port', '0', '--log-level', 'warn'], {
      env: { FLEET_CONSOLE_DIR: build },
    });
    const banner = await coordinator.waitForLine(/dashboard http:/, 30_000);
    const url = /dashboard (http:\/\/\S+?)\/?(\s|$)/.exec(banner)![1]!;
    const admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { url: string; token: string; mqttUrl: string };
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    });
    const shots = process.env['FLEET_SCREENSHOT_DIR'] ?? join(dir, 'screenshots');
    mkdirSync(shots, { recursive: true });
    r = { url, token: admin.token, coordinator, browser, shots, cleanup, fleet: undefined as unknown as Fleet };
    r.fleet = await startFleet(overApi({ mqttUrl: admin.mqttUrl, trustDir: join(dataDir, 'trust'), httpUrl: url, token: admin.token }), dir, DEVICES, { telemetryMs: 400 });
  }, 90_000);

  afterAll(async () => {
    if (!r) return;
    await r.browser.close().catch(() => undefined);
    await r.fleet?.stop().catch(() => undefined);
    const exit = await r.coordinator.stop();
    r.cleanup();
    expect(exit.code, r.coordinator.output()).toBe(0);
  }, 30_000);

  it('an operator watches a rollout, opens its decision, aborts it with a reason and sees the rollback; a viewer cannot act', async () => {
    const run = r!;
    await api('POST', '/v1/users', { name: 'alice', role: 'operator', password: 'correct horse battery' });
    await api('POST', '/v1/users', { name: 'victor', role: 'viewer', password: 'staple viewer battery' });
    // These waves soak for seconds: the statistical judge would rightly ask for more (Monitor).
    await api('PUT', '/v1/flags/canary.stat', { enabled: false, reason: 'browser test: seconds of soak' });
    await api('POST', '/v1/firmware?version=1.1.0&hardware=rpi4', undefined, firmwareImage('1.1.0'));
    const offset = bucketOf(run.fleet.devices[0]!.id);
    const firstWave = run.fleet.devices.filter((d) => bucketRank(bucketOf(d.id), offset) < bucketsForPercent(50)).length;
    const created = await api<{ id: string }>('POST', '/v1/deployments', {
      firmwareVersion: '1.1.0',
      target: { hardwareModels: ['rpi4'] },
      waves: [
        { percent: 50, soakMs: 3000, deadlineMs: 60_000, minDevicesReporting: 1 },
        { percent: 100, soakMs: 3000, deadlineMs: 60_000, minDevicesReporting: 1, requiresApproval: true },
      ],
      gatePolicy: { minReportingDevices: 1 },
      bucketOffset: offset,
      draft: true,
      description: 'browser test',
    });
    const id = created.id;

    // The operator, on a laptop: log in, open the deployment, start it.
    const laptop = await run.browser.newContext({ viewport: LAPTOP });
    const page = await logIn(laptop, 'alice', 'correct horse battery');
    await page.goto(`${run.url}/#/deployments/${id}`);
    await page.locator('h1:has-text("1.1.0")').waitFor();
    await confirmWithReason(page, 'start', 'start from the console');

    // Live progress: the first wave's devices commit, its soak runs, the gate decides.
    const wave1 = page.locator('.wave[data-wave="1"]');
    await wave1.locator(`.legend-item:has-text("committed") b:text-is("${firstWave}")`).waitFor({ timeout: 45_000 });
    const decisionRow = page.locator('tr[data-decision]').first();
    await decisionRow.waitFor({ timeout: 30_000 });
    expect(await decisionRow.locator('.badge').textContent()).toBe('Proceed');
    await page.locator('button[data-action=abort]').waitFor();
    expect(await fitsWidth(page)).toBe(true);
    await shot(page, 'deployment-laptop');

    // The decision: verdict, rule, canary against control plotted per metric and event rate.
    await decisionRow.locator('a').first().click();
    await page.locator('h1:has-text("Wave 1 gate")').waitFor();
    await page.locator('.cohorts .chart canvas').first().waitFor({ timeout: 15_000 });
    expect(await page.locator('.cohorts .chart').count()).toBeGreaterThanOrEqual(4);
    expect(await page.locator('.cohorts table.compare').textContent()).toMatch(/devices\s*\d+\s*\d+/);
    expect(await page.locator('[data-analyzer=hard-gates]').textContent()).toMatch(/Proceed/);
    await shot(page, 'decision-laptop');

    // Back on the deployment: wave 2 waits for approval; abort it with a reason.
    await page.goBack();
    await page.locator('button[data-action=approve]').waitFor();
    await confirmWithReason(page, 'abort', 'console test: not this one');
    await page.locator('h1 .badge:text-is("rolled-back")').waitFor({ timeout: 45_000 });
    const rollback = page.locator('.rollback');
    await rollback.locator(`.legend-item:has-text("back on the old version") b:text-is("${firstWave}")`).waitFor({ timeout: 15_000 });
    expect(await page.locator('[data-action]').count()).toBe(0);
    await shot(page, 'rolled-back-laptop');

    const view = await api<{ phase: string; abortReason?: string; rollback: { exposed: number; confirmed: number } }>('GET', `/v1/deployments/${id}`);
    expect(view).toMatchObject({ phase: 'rolled-back', rollback: { exposed: firstWave, confirmed: firstWave } });
    // The audit log names the operator and the reason.
    const audit = await api<{ entries: { user: string | null; role: string | null; action: string; reason: string | null }[] }>('GET', `/v1/audit?subject=${id}&limit=100`);
    expect(audit.entries).toContainEqual(expect.objectContaining({ user: 'alice', role: 'operator', reason: 'console test: not this one' }));
    await waitFor(async () => (await api<{ devices: { firmwareVersion: string }[] }>('GET', '/v1/devices')).devices.every((d) => d.firmwareVersion === '1.0.0'), 'every device back on 1.0.0', 30_000);

    // A viewer, on a phone: sees the same deployment, no action, and the server refuses one anyway.
    const phone = await run.browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const viewer = await logIn(phone, 'victor', 'staple viewer battery');
    await viewer.goto(`${run.url}/#/deployments/${id}`);
    await viewer.locator('h1 .badge:text-is("rolled-back")').waitFor();
    await viewer.locator('tr[data-decision]').first().waitFor();
    expect(await viewer.locator('[data-action]').count()).toBe(0);
    expect(await fitsWidth(viewer)).toBe(true);
    await shot(viewer, 'deployment-phone');
    const refused = await viewer.evaluate(async (deploymentId) => {
      const session = (await (await fetch('/v1/session')).json()) as { csrfToken: string };
      const res = await fetch(`/v1/deployments/${deploymentId}/actions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
        body: JSON.stringify({ type: 'rollback', reason: 'a viewer tries' }),
      });
      return { status: res.status, body: (await res.json()) as { error: { code: string } } };
    }, id);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('forbidden');

    // The fleet page on the phone: counts, one model, no horizontal scrolling.
    await viewer.goto(`${run.url}/#/`);
    await viewer.locator('.kpi:has-text("devices") .kpi-value:text-is("6")').waitFor();
    expect(await fitsWidth(viewer)).toBe(true);
    await shot(viewer, 'fleet-phone');
    await phone.close();
    await laptop.close();
  }, 90_000);
});
