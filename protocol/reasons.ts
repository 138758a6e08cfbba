/**
 * Reason codes a device reports and verification returns. A zod enum, not Error objects, so they
 * cross the wire and land in the store unchanged. Pure.
 */
import { z } from 'zod';

/** Why a signed manifest or command was refused. Nothing is downloaded after any of these. */
export const VerifyReasonSchema = z.enum([
  'malformed', // not a well-formed envelope or signed document
  'unknown-key', // no signature is by a key in the trust store
  'bad-signature', // a trusted key's signature does not verify
  'below-threshold', // fewer valid signatures from distinct trusted keys than the threshold
  'expired', // now > expiresAt (+ allowed clock skew)
  'not-yet-valid', // issuedAt is in the future (beyond allowed clock skew)
  'wrong-hardware', // this device's hardware model is not listed
  'version-not-installable', // current version outside the manifest's range, or a downgrade without the rollback flag
  'below-security-floor', // securityVersion lower than the device's anti-rollback floor
  'missing-tags', // the manifest targets tags this device does not carry
  'wrong-device', // a command addressed to another device
  'replayed', // a command whose seq is not above the highest this device executed
  'stale-manifest', // metadataVersion below the highest this device accepted (or equal, under another deployment), or none at all
  'unbound-rollback', // a rollback manifest not bound to its deployment and to the versions it undoes
]);
export type VerifyReason = z.infer<typeof VerifyReasonSchema>;

/** Why an update failed or was rolled back on the device. */
export const UpdateReasonSchema = z.enum([
  ...VerifyReasonSchema.options,
  'download-failed', // retries exhausted or the server refused
  'size-mismatch', // more or fewer bytes than the manifest says
  'hash-mismatch', // sha256 of the download differs: the image never reaches a slot
  'write-failed', // writing the inactive slot failed
  'readback-failed', // the slot did not read back as written; never armed
  'trial-boot-failed', // the bootloader fell back: the new slot did not come up
  'health-check-failed', // a configured health check failed on the trial slot
  'broker-unreachable', // the agent on the trial slot could not reach the broker in time
  'trial-timeout', // the trial was not committed within its window
  'rollback-command', // an operator or the coordinator ordered a rollback
  'superseded', // a newer deployment replaced this one
  'busy', // another update is in progress
  'internal-error', // a bug or unexpected condition; see the device log
  'aborted', // the coordinator stopped the wave (cleared it, or left a rollout-cancel) before this device reached its trial; nothing was booted
  'trial-interrupted', // the new slot came up and the agent ran, then the device lost power or reset before the trial decided; the trial is retried (not evidence against the image by itself)
]);
export type UpdateReason = z.infer<typeof UpdateReasonSchema>;
