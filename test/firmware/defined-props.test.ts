import { describe, expect, expectTypeOf, it } from 'vitest';
import { definedProps } from '../../firmware/defined-props.js';

describe('definedProps', () => {
  it('keeps the defined fields, null, 0, empty strings and false included', () => {
    expect(definedProps({ a: 1, b: undefined, c: null, d: 0, e: '', f: false })).toEqual({ a: 1, c: null, d: 0, e: '', f: false });
    expect(Object.keys(definedProps({ a: undefined }))).toEqual([]);
  });

  it('types the fields that may be undefined as optional, so they fit exact optional properties', () => {
    const reason = undefined as string | undefined;
    const props = definedProps({ state: 'failed' as const, reason, attempts: 2 });
    expectTypeOf(props).toEqualTypeOf<{ state: 'failed'; attempts: number } & { reason?: string }>();
    const status: { state: 'failed'; reason?: string; attempts: number } = { ...props };
    expect(status).toEqual({ state: 'failed', attempts: 2 });
    // @ts-expect-error with exactOptionalPropertyTypes, a possibly undefined `reason` does not fit.
    const plain: { reason?: string } = { reason };
    expect(plain).toEqual({ reason: undefined });
  });
});
