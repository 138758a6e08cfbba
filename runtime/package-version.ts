/**
 * The version of the package a module belongs to, read from the nearest package.json above it at
 * run time: package.json is the one place a release sets its version, and it ships with every
 * install (each workspace package has its own, `dist/` beside it; the packed agent in
 * /opt/fleet-agent on a device). I/O: one small synchronous read per call.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import { parsePayload } from '@fleet/protocol/parse';

const PackageJsonSchema = z.object({ version: z.string().min(1).max(64) });

/** The `version` of the nearest package.json above `moduleUrl` (pass `import.meta.url`). */
export function packageVersion(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (;;) {
    const file = join(dir, 'package.json');
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FleetError('package-version', `cannot read ${file}: ${errorMessage(err)}; check its permissions`, { cause: err });
    }
    if (text !== undefined) {
      const parsed = parsePayload(PackageJsonSchema, text, file);
      if (!parsed.ok) throw new FleetError('package-version', `${parsed.error.message}; reinstall fleet`, { cause: parsed.error });
      return parsed.value.version;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new FleetError('package-version', `no package.json above ${fileURLToPath(moduleUrl)}; install fleet with its package.json`);
    dir = parent;
  }
}
