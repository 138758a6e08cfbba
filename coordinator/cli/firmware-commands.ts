/**
 * `fleet firmware upload|list`: added to the `firmware` command group that firmware/cli.ts creates
 * (keygen/sign/verify stay there). The image is streamed to the coordinator.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { FleetError } from '@fleet/protocol/errors';
import { addConnectionOptions, client } from './device-commands.js';
import type { ConnectionOptions } from './admin-client.js';
import { ago, bytes, list, table } from './format.js';

interface FirmwareView {
  firmwareVersion: string;
  hardware: string[];
  size: number;
  sha256: string;
  url: string;
  offlineSigned: boolean;
  uploadedAt: number;
  keyIds: string[];
  integrity?: { status: string; reason?: string };
}

export function addFirmwareAdminCommands(firmware: Command): void {
  addConnectionOptions(
    firmware
      .command('upload <image>')
      .description('store an image on the coordinator; it computes size and sha256 and signs the manifest')
      .requiredOption('--version <semver>', 'firmware version of the image')
      .requiredOption('--hardware <models>', 'compatible hardware models (comma-separated)', list)
      .option('--installable-over <range>', 'semver range of device versions it may replace', '*')
      .option('--security-version <n>', 'anti-rollback security version', '0')
      .option('--tags <tags>', 'tags a device must carry', list)
      .option('--manifest <file>', 'use this offline-signed manifest (`fleet firmware sign`) instead of signing on the coordinator')
      .option('--allow-unreachable-url', "accept a --manifest whose artifact URL the coordinator cannot reach (only the devices can)")
      .option('--json', 'machine-readable output'),
  ).action(async (image: string, opts: ConnectionOptions & {
    version: string; hardware: string[]; installableOver: string; securityVersion: string; tags?: string[]; manifest?: string; allowUnreachableUrl?: boolean; json?: boolean;
  }) => {
    let size: number;
    try {
      size = (await stat(image)).size;
    } catch {
      throw new FleetError('not-found', `cannot read image ${image}; check the path`);
    }
    const q = new URLSearchParams({
      version: opts.version,
      hardware: opts.hardware.join(','),
      installableOver: opts.installableOver,
      securityVersion: opts.securityVersion,
    });
    if (opts.tags?.length) q.set('tags', opts.tags.join(','));
    if (opts.allowUnreachableUrl) q.set('allowUnreachableUrl', 'true');
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(size) };
    if (opts.manifest) headers['x-fleet-manifest'] = (await readFile(opts.manifest)).toString('base64');
    const body = Readable.toWeb(createReadStream(image)) as unknown as NonNullable<RequestInit['body']>;
    const res = await client(opts).request<FirmwareView>('POST', `/v1/firmware?${q.toString()}`, undefined, { headers, raw: body, duplex: true });
    if (opts.json) return console.log(JSON.stringify(res, null, 2));
    console.log(`uploaded ${res.firmwareVersion} for ${res.hardware.join(', ')}: ${bytes(res.size)}, sha256 ${res.sha256}`);
    console.log(`${res.offlineSigned ? 'offline-signed manifest accepted' : 'manifest signed by the coordinator'}; deploy it with \`fleet deploy create --firmware ${res.firmwareVersion}\``);
  });

  addConnectionOptions(firmware.command('list').description('firmware stored on the coordinator').option('--json', 'machine-readable output')).action(
    async (opts: ConnectionOptions & { json?: boolean }) => {
      const res = await client(opts).get<{ firmware: FirmwareView[] }>('/v1/firmware');
      if (opts.json) return console.log(JSON.stringify(res, null, 2));
      if (res.firmware.length === 0) return console.log('no firmware yet; upload an image with `fleet firmware upload <image> --version … --hardware …`');
      console.log(
        table(
          ['version', 'hardware', 'size', 'sha256', 'signed', 'uploaded', 'image'],
          res.firmware.map((f) => [
            f.firmwareVersion, f.hardware.join(','), bytes(f.size), f.sha256.slice(0, 16) + '…', f.offlineSigned ? 'offline' : 'coordinator', ago(f.uploadedAt),
            f.integrity?.status ?? '-',
          ]),
        ),
      );
      for (const f of res.firmware) {
        if (f.integrity?.status === 'damaged') {
          console.log(`${f.firmwareVersion} is damaged on the coordinator (${f.integrity.reason ?? 'unknown'}): not served or deployed; upload the same image again to repair it`);
        }
      }
    },
  );
}
