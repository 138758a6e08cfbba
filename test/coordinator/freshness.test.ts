/**
 * The coordinator's side of freshness: its counters in the store, SQLite and PostgreSQL (monotonic through restarts and a clock
 * that goes back), the metadataVersion of every manifest it signs, offline-signed manifests checked
 * at upload and bound deployments, and what a deployment says at creation about security floors. A
 * real coordinator on 127.0.0.1; devices made known through the registry as the broker ingest does.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FreshnessCounters } from '../../coordinator/deployments/freshness-counters.js';
import { floorWarnings } from '../../coordinator/deployments/creation-warnings.js';
import { openPostgresStore, openSqliteStore } from '../../coordinator/store/open-store.js';
import { freshPostgresUrl, openTestStore, STORE_KINDS } from '../support/postgres.js';
import type { Coordinator } from '../../coordinator/index.js';
import { buildManifest, signManifest } from '../../firmware/manifest.js';
import { generateSigningKey, publicKeyPem } from '../../firmware/keys.js';
import { digestFile } from '../../firmware/image.js';
import { knownDevices, startCoordinator, tempDbPath, tempDir, uniqueId } from './helpers.js';

describe.each(STORE_KINDS)('freshness counters on %s', (kind) => {
  it('issue max(last + 1, now): monotonic through a clock that goes back, and across a reopen', async () => {
    const reopen = kind === 'sqlite' ? ((path) => () => Promise.resolve(openSqliteStore(path)))(tempDbPath()) : ((url) => () => openPostgresStore(url))(await freshPostgresUrl());
    let now = 5_000;
    let store = await reopen();
    let counters = new FreshnessCounters(store, () => now);
    expect(await counters.current('manifest')).toBe(0);
    expect(await counters.next('manifest')).toBe(5_000);
    expect(await counters.next('manifest')).toBe(5_001);
    now = 1_000; // the clock stepped back
    expect(await counters.next('manifest')).toBe(5_002);
    now = 9_000;
    expect(await counters.next('manifest')).toBe(9_000);
    // Independent kinds.
    expect(await counters.next('command')).toBe(9_000);
    await counters.observe('manifest', 20_000); // an offline-signed manifest was deployed
    await counters.observe('manifest', 10); // never lowers it
    await store.close();
    store = await reopen();
    onTestFinished(() => store.close());
    counters = new FreshnessCounters(store, () => now);
    expect(await counters.next('manifest')).toBe(20_001);
    expect(await counters.next('command')).toBe(9_001);
  });

  it('never issue one value twice, also to issuers racing on one store', async () => {
    const store = await openTestStore(kind);
    // Two coordinators on one store (replicas on PostgreSQL), with a clock that stands still.
    const a = new FreshnessCounters(store, () => 7_000);
    const b = new FreshnessCounters(store, () => 7_000);
    const values = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).next('command')));
    expect(new Set(values).size).toBe(40);
    expect(Math.max(...values)).toBe(7_039);
  });
});

describe('floor warnings at deployment creation', () => {
  it.each([
    { name: 'raises the floor of some devices', sv: 3, floors: [0, 0, 3], want: [/raises the security floor to 3 on 2 of the 3 known target devices.*can never boot an older image below 3/] },
    { name: 'changes no floor', sv: 2, floors: [2, 2], want: [] },
    { name: 'is below the floor of some devices', sv: 1, floors: [1, 2], want: [/below the floor of 1 of the 2 .*refuse it \(below-security-floor\)/] },
    { name: 'both', sv: 2, floors: [0, 3], want: [/raises/, /below the floor/] },
  ])('a firmware that $name', ({ sv, floors, want }) => {
    const got = floorWarnings('2.0.0', sv, floors);
    expect(got).toHaveLength(want.length);
    want.forEach((re, i) => expect(got[i]).toMatch(re));
  });
});

describe('a coordinator signing fresh manifests', () => {
  /** A coordinator; `trusted` keys are in its trust directory before it starts (offline signers). */
  async function coordinator(trusted: ReturnType<typeof generateSigningKey>[] = []): Promise<Coordinator> {
    const t = tempDir();
    await mkdir(join(t.dir, 'trust'), { recursive: true });
    for (const [i, k] of trusted.entries()) await writeFile(join(t.dir, 'trust', `offline-${i}.pub`), publicKeyPem(k));
    const c = await startCoordinator(t.dir);
    onTestFinished(async () => {
      await c.stop();
      t.cleanup();
    });
    return c;
  }
  const image = (label: string): Readable => Readable.from([Buffer.alloc(2048, label)]);
  /** A provisioned device that has said hello (a device never provisioned is a ghost, in no wave). */
  const known = async (c: Coordinator, model: string, securityFloor = 0): Promise<string> => {
    const id = uniqueId('dev');
    await knownDevices(c, [id], model, { securityFloor });
    return id;
  };
  const waves = [{ percent: 100, soakMs: 1000 }];
  const manifestOf = async (c: Coordinator, id: string) => (await c.deployment(id))!.manifest!;

  it('gives each deployment manifest the next metadataVersion, and warns when a release raises the floor', async () => {
    const c = await coordinator();
    await c.uploadFirmware({ image: image('a'), version: '2.0.0', hardware: ['m1', 'm2'], securityVersion: 3 });
    await known(c, 'm1');
    await known(c, 'm1', 3);
    await known(c, 'm2');
    const first = await c.createDeployment({ firmwareVersion: '2.0.0', target: { hardwareModels: ['m1'] }, waves });
    const second = await c.createDeployment({ firmwareVersion: '2.0.0', target: { hardwareModels: ['m2'] }, waves });
    const a = await manifestOf(c, first.id);
    const b = await manifestOf(c, second.id);
    expect(a).toMatchObject({ deploymentId: first.id, securityVersion: 3 });
    expect(b.metadataVersion!).toBeGreaterThan(a.metadataVersion!);
    // Short-lived: 7 days.
    expect(Date.parse(a.expiresAt) - Date.parse(a.issuedAt)).toBe(7 * 24 * 3600_000);
    expect(first.warnings).toContainEqual(expect.stringMatching(/raises the security floor to 3 on 1 of the 2 known target devices/));
  });

  it('refuses offline manifests that devices would refuse, and binds a deployment to the one its manifest names', async () => {
    const key = generateSigningKey();
    const c = await coordinator([key]);
    const t = tempDir();
    onTestFinished(t.cleanup);
    const bytes = Buffer.alloc(2048, 'rb');
    const file = join(t.dir, 'fw.img');
    await writeFile(file, bytes);
    const { size, sha256 } = await digestFile(file);
    const offline = (over: Partial<Parameters<typeof buildManifest>[0]>, strip?: 'metadataVersion') => {
      const m = buildManifest({ firmwareVersion: '1.0.1', hardware: ['m1'], artifact: { url: 'http://127.0.0.1:1/fw.img', size, sha256 }, issuedAt: Date.now(), ...over });
      if (strip) delete (m as { metadataVersion?: number })[strip];
      return signManifest(m, [key]);
    };
    const upload = (manifest: unknown, version = '1.0.1') => c.uploadFirmware({ image: Readable.from([bytes]), version, hardware: ['m1'], offlineManifest: manifest });
    // An unbound rollback manifest, signed by another tool (buildManifest refuses to make one).
    const unbound = buildManifest({ firmwareVersion: '1.0.1', hardware: ['m1'], artifact: { url: 'http://127.0.0.1:1/fw.img', size, sha256 }, issuedAt: Date.now() });
    await expect(upload(signManifest({ ...unbound, rollback: true }, [key]))).rejects.toThrow(/bound to one deployment/);
    await expect(upload(offline({}, 'metadataVersion'))).rejects.toThrow(/no metadataVersion/);
    // A rollback manifest must be bound; one that is, binds its deployment's id.
    const dep = uniqueId('rb');
    await upload(offline({ rollback: true, deploymentId: dep, installableOver: '>1.0.1' }));
    await known(c, 'm1');
    await expect(c.createDeployment({ id: uniqueId('other'), firmwareVersion: '1.0.1', target: { hardwareModels: ['m1'] }, waves })).rejects.toThrow(/signed for deployment/);
    const created = await c.createDeployment({ firmwareVersion: '1.0.1', target: { hardwareModels: ['m1'] }, waves });
    expect(created.id).toBe(dep);
    // An offline manifest older than what the coordinator has issued since: devices that took a newer
    // one refuse it, and the operator hears so at creation.
    const old = buildManifest({ firmwareVersion: '1.0.2', hardware: ['m3'], artifact: { url: 'http://127.0.0.1:1/fw.img', size, sha256 }, issuedAt: Date.now(), metadataVersion: 5 });
    await c.uploadFirmware({ image: Readable.from([bytes]), version: '1.0.2', hardware: ['m3'], offlineManifest: signManifest(old, [key]) });
    await known(c, 'm3');
    const stale = await c.createDeployment({ firmwareVersion: '1.0.2', target: { hardwareModels: ['m3'] }, waves });
    expect(stale.warnings).toContainEqual(expect.stringMatching(/metadataVersion 5, not above \d+ .*refuse it \(stale-manifest\); sign it again/));
  });
}, 60_000);
