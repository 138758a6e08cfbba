/**
 * Optional fields without conditional spreads. With `exactOptionalPropertyTypes` an optional field
 * may be absent but not `undefined`, so `{ reason: job.reason }` does not fit `{ reason?: string }`
 * when `job.reason` may be undefined; `...definedProps({ reason: job.reason })` does. Pure.
 *
 * Generic, not firmware's own: it lives here because firmware/ is the one package that agent/,
 * coordinator/ and simulator/ all depend on, and protocol/ holds only the wire contract.
 */

/** The keys of T whose value may be undefined. */
type MaybeUndefinedKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? K : never }[keyof T];

/** T with every key that may be undefined made optional instead (and never undefined). */
export type DefinedProps<T> = {
  [K in keyof T as K extends MaybeUndefinedKeys<T> ? never : K]: T[K];
} & {
  [K in keyof T as K extends MaybeUndefinedKeys<T> ? K : never]?: Exclude<T[K], undefined>;
};

/**
 * The fields of `props` whose value is not undefined (null, 0, '' and false are kept), typed so
 * that the ones that may be undefined are optional: `{ a: 1, b: undefined }` gives `{ a: 1 }`.
 */
export function definedProps<T extends Record<string, unknown>>(props: T): DefinedProps<T> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(props)) if (value !== undefined) out[key] = value;
  return out as DefinedProps<T>;
}
