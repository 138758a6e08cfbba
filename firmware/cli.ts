/**
 * `fleet firmware keygen|sign|verify`: offline key management and manifest signing for operators.
 * (`fleet firmware upload|list` talk to a coordinator and are registered by coordinator/.)
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { parsePayload } from '@fleet/protocol/parse';
import { EnvelopeSchema } from '@fleet/protocol/signed';
import { digestFile } from './image.js';
import { loadSigningKey, writeKeyPair } from './keys.js';
import { buildManifest, signManifest, verifyManifest } from './manifest.js';
import { loadTrustStore } from './trust-store.js';
import { parseDuration } from './duration.js';
import { definedProps } from './defined-props.js';

const list = (value: string, previous: string[] = []): string[] => [
  ...previous,
  ...value.split(',').map((s) => s.trim()).filter(Boolean),
];

export function registerFirmwareCommands(program: Command): Command {
  const firmware = program.command('firmware').description('firmware keys, signed manifests and artifacts');

  firmware
    .command('keygen')
    .description('generate an Ed25519 signing key pair (<name>.key written 0600, <name>.pub for trust stores)')
    .requiredOption('--out <dir>', 'directory to write the key pair into')
    .option('--name <name>', 'file name stem', 'signing')
    .option('--json', 'machine-readable output')
    .action(async (opts: { out: string; name: string; json?: boolean }) => {
      const { key, privatePath, publicPath } = await writeKeyPair(opts.out, opts.name);
      if (opts.json) console.log(JSON.stringify({ keyid: key.keyid, privatePath, publicPath }));
      else console.log(`key id ${key.keyid}\nprivate key ${privatePath} (keep it secret)\npublic key  ${publicPath} (copy into device trust stores)`);
    });

  firmware
    .command('sign <image>')
    .description('compute size and sha256 of an image and write its signed manifest')
    .requiredOption('--version <semver>', 'firmware version of the image')
    .requiredOption('--hardware <models>', 'compatible hardware models (comma-separated or repeated)', list)
    .requiredOption('--key <file>', 'private signing key (repeat for threshold signing)', (v: string, p: string[] = []) => [...p, v])
    .requiredOption('--url <url>', 'URL devices download the image from; {sha256} in it becomes the image\'s digest (e.g. http://127.0.0.1:8080/artifacts/{sha256}, where a coordinator serves an uploaded image)')
    .option('--installable-over <range>', 'semver range of device versions it may replace', '*')
    .option('--security-version <n>', 'anti-rollback security version', (v) => Number.parseInt(v, 10), 0)
    .option('--tags <tags>', 'tags a device must carry', list)
    .option('--rollback', 'sign as an operator rollback (allows a lower version); needs --deployment and an --installable-over naming the versions it undoes')
    .option('--deployment <id>', 'bind the manifest to one deployment')
    .option('--ttl <duration>', 'validity, e.g. 7d, 12h (default 7d; 24h for a rollback)')
    .option('--metadata-version <n>', 'freshness counter devices never accept below (default: the signing time in ms)', (v) => Number.parseInt(v, 10))
    .option('--out <file>', 'where to write the envelope (default: <image>.manifest.json)')
    .option('--json', 'print the envelope instead of a summary')
    .action(async (image: string, opts: {
      version: string; hardware: string[]; key: string[]; url: string; installableOver: string;
      securityVersion: number; tags?: string[]; rollback?: boolean; deployment?: string; ttl?: string; metadataVersion?: number; out?: string; json?: boolean;
    }) => {
      const keys = await Promise.all(opts.key.map((k) => loadSigningKey(k)));
      const { size, sha256 } = await digestFile(image);
      const manifest = buildManifest({
        firmwareVersion: opts.version,
        hardware: opts.hardware,
        artifact: { url: opts.url.replaceAll('{sha256}', sha256), size, sha256 },
        installableOver: opts.installableOver,
        securityVersion: opts.securityVersion,
        ...(opts.tags ? { tags: opts.tags } : {}),
        ...(opts.rollback ? { rollback: true } : {}),
        ...(opts.deployment ? { deploymentId: opts.deployment } : {}),
        issuedAt: Date.now(),
        ...(opts.ttl !== undefined ? { ttlMs: parseDuration(opts.ttl) } : {}),
        ...definedProps({ metadataVersion: opts.metadataVersion }),
      });
      const envelope = signManifest(manifest, keys);
      const out = opts.out ?? `${image}.manifest.json`;
      await writeFile(out, JSON.stringify(envelope, null, 2) + '\n');
      if (opts.json) console.log(JSON.stringify(envelope));
      else console.log(`signed ${basename(image)} ${manifest.firmwareVersion} (${size} bytes, sha256 ${sha256}, metadataVersion ${manifest.metadataVersion}, expires ${manifest.expiresAt}) → ${out}`);
    });

  firmware
    .command('verify <manifest>')
    .description('verify a signed manifest (and optionally its image) the way a device does; exit 0 when accepted')
    .requiredOption('--trust <dir>', 'trust store directory (*.pub keys, optional trust.json)')
    .option('--image <file>', 'also check the image size and sha256')
    .option('--hardware <model>', 'check as a device of this hardware model')
    .option('--current-version <semver>', 'check as a device running this version')
    .option('--security-floor <n>', 'check as a device with this anti-rollback floor', (v) => Number.parseInt(v, 10), 0)
    .option('--tags <tags>', 'device tags', list)
    .option('--deployment <id>', 'check as offered under this deployment (a bound manifest must match)')
    .option('--metadata-floor <n>', 'check as a device that accepted this metadataVersion (a replay is refused)', (v) => Number.parseInt(v, 10))
    .option('--json', 'machine-readable result')
    .action(async (file: string, opts: {
      trust: string; image?: string; hardware?: string; currentVersion?: string; securityFloor: number; tags?: string[]; deployment?: string; metadataFloor?: number; json?: boolean;
    }) => {
      const parsed = parsePayload(EnvelopeSchema, await readFile(file), file);
      const report = (ok: boolean, reason: string, detail: string): void => {
        if (opts.json) console.log(JSON.stringify({ ok, reason, detail }));
        else console.log(ok ? `OK: ${detail}` : `REFUSED (${reason}): ${detail}`);
        process.exitCode = ok ? 0 : 1;
      };
      if (!parsed.ok) return report(false, 'malformed', parsed.error.message);
      const trust = await loadTrustStore(opts.trust);
      // Without a device to check against, accept any hardware and version: only signatures and time count.
      const signedHardware = parsed.value.signed['hardware'];
      const firstModel = Array.isArray(signedHardware) && typeof signedHardware[0] === 'string' ? signedHardware[0] : '';
      const result = verifyManifest(parsed.value, trust, {
        now: Date.now(),
        hardwareModel: opts.hardware ?? firstModel,
        currentVersion: opts.currentVersion ?? '0.0.0',
        securityFloor: opts.securityFloor,
        tags: opts.tags ?? ((parsed.value.signed['tags'] as string[] | undefined) ?? []),
        ...definedProps({ deploymentId: opts.deployment }),
        ...(opts.metadataFloor !== undefined ? { freshness: { metadataVersion: opts.metadataFloor } } : {}),
      });
      if (!result.ok) return report(false, result.reason, result.detail);
      const m = result.value;
      if (opts.image) {
        const { size, sha256 } = await digestFile(opts.image);
        if (size !== m.artifact.size) return report(false, 'size-mismatch', `image is ${size} bytes, manifest says ${m.artifact.size}`);
        if (sha256 !== m.artifact.sha256) return report(false, 'hash-mismatch', `image sha256 ${sha256} differs from the manifest's`);
      }
      report(true, 'ok', `${m.firmwareVersion} for ${m.hardware.join(',')} signed by ${result.keyIds.length} trusted key(s), expires ${m.expiresAt}`);
    });

  return firmware;
}
