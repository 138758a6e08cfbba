/**
 * Admin API: firmware artifacts. Upload streams the image as the request body
 * (`application/octet-stream`) with the version and hardware in the query string; an offline-signed
 * manifest travels base64-encoded in the `x-fleet-manifest` header.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { HardwareModelSchema, SemverSchema, TagSchema } from '@fleet/protocol/ids';
import { ValidationError } from '@fleet/protocol/errors';
import { EnvelopeSchema, ManifestSchema } from '@fleet/protocol/signed';
import { headCheck, type ArtifactUrlCheck } from './artifact-url-check.js';
import type { ArtifactRecord, ArtifactStore } from '../artifacts/artifact-store.js';
import type { FirmwareService } from '../artifacts/firmware-service.js';
import type { IntegrityView } from '../artifacts/artifact-integrity.js';
import { actorOf, type AdminApi } from './admin-api.js';
import { NotFoundError } from './http-errors.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface FirmwareRouteDeps {
  store: ArtifactStore;
  firmware: FirmwareService;
  /** Records the action in the audit log; resolves once stored (the answer follows it). */
  audit: (actor: string, action: string, subject: string, detail?: Record<string, unknown>) => Promise<void>;
  /** Whether an offline manifest's artifact URL serves its image. Default: one HEAD request (artifact-url-check.ts). */
  checkUrl?: ArtifactUrlCheck;
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
  /** Accept an offline manifest whose artifact URL the coordinator cannot reach (only devices can). */
  allowUnreachableUrl: z.enum(['true', 'false']).optional(),
});

/** The artifact an offline manifest names, if it parses (the service reports a malformed one). */
function offlineArtifact(value: unknown): { url: string; size: number; sha256: string } | undefined {
  const env = EnvelopeSchema.safeParse(value);
  if (!env.success) return undefined;
  const m = ManifestSchema.safeParse(env.data.signed);
  return m.success ? m.data.artifact : undefined;
}

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

export function registerFirmwareRoutes(api: AdminApi, deps: FirmwareRouteDeps): void {
  const view = (a: ArtifactRecord): Record<string, unknown> => artifactView(a, deps.firmware.artifactUrl(a.sha256), deps.firmware.integrityOf(a.sha256));

  api.get('/v1/firmware', { schema: { summary: 'uploaded firmware and the state of each image' } }, () => ({
    firmware: deps.store.list().map(view),
  }));

  api.get('/v1/firmware/:version', { schema: { summary: 'one firmware version with its signed manifest', params: z.object({ version: z.string() }) } }, ({ params }) => {
    const a = deps.store.get(params.version);
    if (!a) throw new NotFoundError(`no firmware ${params.version}; see \`fleet firmware list\``);
    return { ...view(a), manifest: a.manifest };
  });

  // The body is the image itself, streamed to the store: in its own scope, no parser reads it.
  void api.register((upload: AdminApi, _options, done) => {
    upload.removeAllContentTypeParsers();
    upload.addContentTypeParser('*', (_request, _payload, done) => done(null));
    upload.post(
      '/v1/firmware',
      {
        schema: {
          summary: 'upload and sign an image (the body is the image, application/octet-stream)',
          querystring: UploadQuery,
          headers: z.looseObject({ 'x-fleet-manifest': z.string().optional().describe('an offline-signed manifest, base64 of its JSON') }),
        },
      },
      async (request, reply) => reply.code(201).send(view(await uploadImage(request.raw, request.query, actorOf(request)))),
    );
    done();
  });

  async function uploadImage(req: IncomingMessage, q: z.infer<typeof UploadQuery>, actor: string): Promise<ArtifactRecord> {
    let offlineManifest: unknown;
    const header = req.headers['x-fleet-manifest'];
    if (typeof header === 'string' && header.length > 0) {
      try {
        offlineManifest = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
      } catch {
        throw new ValidationError('x-fleet-manifest header', ['must be base64 of the manifest JSON']);
      }
    }
    const artifact = offlineManifest !== undefined && q.allowUnreachableUrl !== 'true' ? offlineArtifact(offlineManifest) : undefined;
    const own = artifact ? deps.firmware.artifactUrl(artifact.sha256) : undefined;
    if (artifact && artifact.url !== own) {
      const problem = await (deps.checkUrl ?? headCheck())(artifact.url, artifact.size);
      if (problem !== undefined) {
        // Read the image the client is sending before answering, so it gets the answer, not a reset.
        for await (const _chunk of req) void _chunk;
        throw new ValidationError('offline manifest', [
          `its artifact URL ${artifact.url} is not served by this coordinator and ${problem}, so devices could not download the image; ` +
            `sign it with --url ${deps.firmware.artifactUrl('{sha256}')} (this coordinator serves the image there once uploaded), ` +
            'serve the image at that URL, or upload with --allow-unreachable-url if only the devices can reach it',
        ]);
      }
    }
    const record = await deps.firmware.upload({
      source: req,
      version: q.version,
      hardware: q.hardware,
      ...definedProps({ installableOver: q.installableOver, securityVersion: q.securityVersion, tags: q.tags, offlineManifest }),
    });
    await deps.audit(actor, 'firmware.uploaded', record.firmwareVersion, { sha256: record.sha256, size: record.size, offlineSigned: record.offlineSigned });
    return record;
  }
}
