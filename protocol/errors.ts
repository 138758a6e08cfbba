/**
 * The one error base for fleet. Every error has a stable string `code` that scripts can match and a
 * message that tells an operator what to do next. Pure; no dependencies.
 */
export class FleetError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * The message of anything caught: an Error's message, or the thrown value as text (libraries and
 * workers sometimes throw strings). What every package puts into its own FleetError messages, API
 * error bodies and device failure details.
 */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Input from outside (a payload, a file, a CLI argument) did not match its schema. */
export class ValidationError extends FleetError {
  readonly issues: readonly string[];

  constructor(what: string, issues: readonly string[]) {
    super('invalid-input', `${what} is invalid: ${issues.join('; ')}`);
    this.issues = issues;
  }
}

/** A message carried a protocol version this build does not speak. */
export class UnsupportedVersionError extends FleetError {
  constructor(what: string, version: unknown) {
    super(
      'unsupported-version',
      `${what} has protocol version ${JSON.stringify(version)}, but this build speaks v1; upgrade the older side`,
    );
  }
}

/** A configuration file or option is wrong; the message names the field. */
export class ConfigError extends FleetError {
  constructor(message: string) {
    super('config', message);
  }
}
