/**
 * Identifier rules shared by every topic and message. Pure.
 *
 * One rule for device ids, hardware models and deployment ids, so that no id can inject MQTT wildcards
 * (`+`, `#`), a level separator (`/`), `$`-prefixed system topics, whitespace or control characters.
 */
import { z } from 'zod';

/** Letters, digits, `.`, `_`, `-`; starts with a letter or digit; 1–64 characters. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const idSchema = (what: string) =>
  z.string().regex(ID_PATTERN, {
    message: `${what} must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
  });

export const DeviceIdSchema = idSchema('device id');
export const HardwareModelSchema = idSchema('hardware model');
export const DeploymentIdSchema = idSchema('deployment id');
export const TagSchema = idSchema('tag');

export type DeviceId = z.infer<typeof DeviceIdSchema>;

export function isValidId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/**
 * Semantic version 2.0.0 (the official regular expression from semver.org). protocol/ depends on zod
 * alone, so range checks live with the firmware code that uses the semver package.
 */
export const SEMVER_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export const SemverSchema = z.string().regex(SEMVER_PATTERN, { message: 'must be a semantic version such as 1.4.2' });

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be 64 lowercase hex digits' });
