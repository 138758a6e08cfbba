/**
 * Admin API: firmware artifacts. Upload streams the image as the request body
 * (`application/octet-stream`) with the version and hardware in the query string; an offline-signed
 * manifest travels base64-encoded in the `x-fleet-manifest` header.
 */
import { z } from 'zod';
import { HardwareModelSchema, SemverSchema, TagSchema } from '../../protocol/ids.js';
import { ValidationError } from '../../protocol/errors.js';
import type { ArtifactRecord, ArtifactStore } from '../artifacts/artifact-store.js';
import type { FirmwareService } from '../artifacts/firmware-service.js';
import type { IntegrityView } from '../artifacts/artifact-integrity.js';
import { NotFoundError, reply, type Router } from './router.js';
import { definedProps } from '../../firmware/defined-props.js';

export interface FirmwareRouteDeps {
  store: ArtifactStore;
  firmware: FirmwareService;
  audit: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => void;
}

const csv = (item: z.ZodType<string>) =>
  z.string().transform((s, ctx) => {
    const parts = s.split(',').map((p) => p.trim()).filter(Boolean);
    for (const p of parts) {
      const r = item.safeParse(p);
      if (!r.success) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(p)}: ${r.error.issues[0]?.message ?? 'invalid'}` });
    }
    return parts;
  });

const UploadQuery = z.object({
  version: SemverSchema,
  hardware: csv(HardwareModelSchema).refine((a) => a.length > 0, 'name at least one hardware model'),
  installableOver: z.string().max(256).optional(),
  securityVersion: z.coerce.number().int().min(0).optional(),
  tags: csv(TagSchema).optional(),
});

/** An artifact as the API shows it, with what is known about its image on disk. */
export function artifactView(a: ArtifactRecord, url: string, integrity: IntegrityView): Record<string, unknown> {
  return {
    firmwareVersion: a.firmwareVersion,
    hardware: a.hardware,
    size: a.size,
    sha256: a.sha256,
    url,
    offlineSigned: a.offlineSigned,
    uploadedAt: a.uploadedAt,
    keyIds: a.manifest.signatures.map((s) => s.keyid),
    integrity,
  };
}

export function registerFirmwareRoutes(router: Router, deps: FirmwareRouteDeps): void {
  const view = (a: ArtifactRecord): Record<string, unknown> => artifactView(a, deps.firmware.artifactUrl(a.sha256), deps.firmware.integrityOf(a.sha256));

  router.get('/v1/firmware', {}, () => ({
    firmware: deps.store.list().map(view),
  }));

  router.get('/v1/firmware/:version', {}, ({ params }) => {
    const a = deps.store.get(params['version']!);
    if (!a) throw new NotFoundError(`no firmware ${params['version']}; see \`fleet firmware list\``);
    return { ...view(a), manifest: a.manifest };
  });

  // The body is the image itself, so the router must not parse it: the query is parsed here.
  router.add('POST', '/v1/firmware', {}, async ({ req, actor }) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = UploadQuery.safeParse(Object.fromEntries(url.searchParams));
    if (!q.success) throw new ValidationError('upload', q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    let offlineManifest: unknown;
    const header = req.headers['x-fleet-manifest'];
    if (typeof header === 'string' && header.length > 0) {
      try {
        offlineManifest = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
      } catch {
        throw new ValidationError('x-fleet-manifest header', ['must be base64 of the manifest JSON']);
      }
    }
    const record = await deps.firmware.upload({
      source: req,
      version: q.data.version,
      hardware: q.data.hardware,
      ...definedProps({
        installableOver: q.data.installableOver,
        securityVersion: q.data.securityVersion,
        tags: q.data.tags,
        offlineManifest,
      }),
    });
    deps.audit(actor, 'firmware.uploaded', record.firmwareVersion, { sha256: record.sha256, size: record.size, offlineSigned: record.offlineSigned });
    return reply(201, view(record));
  });
}
