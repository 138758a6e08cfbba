import { mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerFirmwareCommands } from '../../firmware/cli.js';

async function run(...args: string[]): Promise<{ out: string; exitCode: number }> {
  const program = new Command('fleet').exitOverride();
  registerFirmwareCommands(program);
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  process.exitCode = 0;
  try {
    await program.parseAsync(['node', 'fleet', ...args]);
  } finally {
    spy.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { out: lines.join('\n'), exitCode };
}

describe('fleet firmware keygen | sign | verify', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-fw-cli-'));
  const keys = join(dir, 'keys');
  const trust = join(dir, 'trust');
  const image = join(dir, 'app-1.5.0.img');

  beforeAll(async () => {
    writeFileSync(image, Buffer.alloc(4096, 7));
    await run('firmware', 'keygen', '--out', keys);
    mkdirSync(trust);
    copyFileSync(join(keys, 'signing.pub'), join(trust, 'signing.pub'));
  });
  afterEach(() => {
    process.exitCode = 0;
  });

  it('writes the private key 0600 and refuses to overwrite it', async () => {
    expect(statSync(join(keys, 'signing.key')).mode & 0o777).toBe(0o600);
    await expect(run('firmware', 'keygen', '--out', keys)).rejects.toThrow(/already exists/);
  });

  it('signs a rollback only bound to a deployment and the versions it undoes, for 24 hours; verify checks freshness', async () => {
    const key = join(keys, 'signing.key');
    const base = ['firmware', 'sign', image, '--version', '1.5.0', '--hardware', 'rpi4', '--key', key, '--url', 'http://127.0.0.1/a.img', '--rollback'];
    await expect(run(...base)).rejects.toThrow(/bound to one deployment/);
    await expect(run(...base, '--deployment', 'rb-1')).rejects.toThrow(/versions it undoes/);
    const out = join(dir, 'rollback.manifest.json');
    await run(...base, '--deployment', 'rb-1', '--installable-over', '>=1.6.0 <1.7.0', '--metadata-version', '4242', '--out', out);
    const m = (JSON.parse(readFileSync(out, 'utf8')) as { signed: { metadataVersion: number; issuedAt: string; expiresAt: string; deploymentId: string } }).signed;
    expect(m).toMatchObject({ metadataVersion: 4242, deploymentId: 'rb-1' });
    expect(Date.parse(m.expiresAt) - Date.parse(m.issuedAt)).toBe(24 * 3600_000);
    const device = ['--trust', trust, '--current-version', '1.6.1', '--json'];
    expect(JSON.parse((await run('firmware', 'verify', out, ...device, '--deployment', 'rb-1')).out)).toMatchObject({ ok: true });
    expect(JSON.parse((await run('firmware', 'verify', out, ...device, '--deployment', 'rb-2')).out)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(JSON.parse((await run('firmware', 'verify', out, ...device, '--metadata-floor', '5000')).out)).toMatchObject({ ok: false, reason: 'stale-manifest' });
  });

  it('signs an image and verifies manifest and image like a device', async () => {
    const signed = await run('firmware', 'sign', image, '--version', '1.5.0', '--hardware', 'rpi4,rpi5', '--key', join(keys, 'signing.key'), '--url', 'http://127.0.0.1/a.img');
    expect(signed.out).toMatch(/signed app-1\.5\.0\.img 1\.5\.0 \(4096 bytes/);
    const manifestPath = `${image}.manifest.json`;
    const ok = await run('firmware', 'verify', manifestPath, '--trust', trust, '--image', image, '--hardware', 'rpi5', '--json');
    expect(ok.exitCode).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ ok: true });

    const wrongHw = await run('firmware', 'verify', manifestPath, '--trust', trust, '--hardware', 'rpi3', '--json');
    expect(wrongHw.exitCode).toBe(1);
    expect(JSON.parse(wrongHw.out)).toMatchObject({ ok: false, reason: 'wrong-hardware' });

    writeFileSync(join(dir, 'other.img'), Buffer.alloc(4096, 8));
    const wrongImage = await run('firmware', 'verify', manifestPath, '--trust', trust, '--image', join(dir, 'other.img'));
    expect(wrongImage.exitCode).toBe(1);
    expect(wrongImage.out).toMatch(/REFUSED \(hash-mismatch\)/);

    const env = JSON.parse(readFileSync(manifestPath, 'utf8')) as { signed: { artifact: { size: number } } };
    env.signed.artifact.size += 1;
    writeFileSync(join(dir, 'tampered.json'), JSON.stringify(env));
    const tampered = await run('firmware', 'verify', join(dir, 'tampered.json'), '--trust', trust);
    expect(tampered.exitCode).toBe(1);
    expect(tampered.out).toMatch(/REFUSED \(bad-signature\)/);
  });

  it('refuses a manifest from an unknown key', async () => {
    const other = join(dir, 'other-keys');
    await run('firmware', 'keygen', '--out', other);
    await run('firmware', 'sign', image, '--version', '1.5.0', '--hardware', 'rpi4', '--key', join(other, 'signing.key'), '--url', 'http://127.0.0.1/a.img', '--out', join(dir, 'rogue.json'));
    const r = await run('firmware', 'verify', join(dir, 'rogue.json'), '--trust', trust, '--json');
    expect(JSON.parse(r.out)).toMatchObject({ ok: false, reason: 'unknown-key' });
  });
});
