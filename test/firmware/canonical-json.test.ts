import { describe, expect, it } from 'vitest';
import { canonicalize, CanonicalJsonError } from '../../firmware/canonical-json.js';

describe('RFC 8785 canonical JSON', () => {
  it('sorts members by UTF-16 code units, recursively, without whitespace', () => {
    expect(canonicalize({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it('orders keys as RFC 8785 §3.2.3 does (UTF-16, not code points)', () => {
    // The RFC's own sorting example: "\u20ac" (€) < "\ud83d\ude00" (😀) < "\ufb33" by UTF-16 units.
    const input = { '\ufb33': 'Hebrew', '\u20ac': 'Euro', '\ud83d\ude00': 'Smiley', '\r': 'CR', '1': 'One', '\u0080': 'Control', 'ö': 'Latin' };
    expect(Object.keys(JSON.parse(canonicalize(input)) as object)).toEqual(['1', '\r', '\u0080', 'ö', '\u20ac', '\ud83d\ude00', '\ufb33']);
  });

  it.each([
    [0, '0'],
    [-0, '0'],
    [1e21, '1e+21'],
    [1e-7, '1e-7'],
    [123.456, '123.456'],
    [9007199254740991, '9007199254740991'],
    [0.000001, '0.000001'],
  ])('serialises the number %d as %s (ECMAScript Number-to-String)', (n, text) => {
    expect(canonicalize(n)).toBe(text);
  });

  it('escapes strings as JSON.stringify does', () => {
    expect(canonicalize('a"b\\c\n\u0001é')).toBe('"a\\"b\\\\c\\n\\u0001é"');
  });

  it('drops undefined members like JSON does, but refuses values with no JSON form', () => {
    expect(canonicalize({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(() => canonicalize(Number.NaN)).toThrow(CanonicalJsonError);
    expect(() => canonicalize({ x: Infinity })).toThrow(/\$\.x/);
    expect(() => canonicalize([1n])).toThrow(CanonicalJsonError);
  });

  it('does not depend on insertion order', () => {
    expect(canonicalize({ x: 1, y: 2 })).toBe(canonicalize({ y: 2, x: 1 }));
  });
});
