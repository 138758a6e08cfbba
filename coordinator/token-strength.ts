/**
 * How guessable an operator token is. Staging and production refuse an admin token shorter than
 * {@link MIN_TOKEN_LENGTH} characters or with fewer than {@link MIN_TOKEN_BITS} estimated bits. Pure.
 *
 * The estimate is the token's length times the Shannon entropy of its own character distribution,
 * and the same over the steps between neighbouring characters (whichever is lower): repeats
 * (`aaaa…`, `abab…`, `changeme-changeme…`) score low on the first, runs (`abcdef…`, `0123…`) on the
 * second. A random 32-byte token (`openssl rand -base64 32`, 44 characters) scores 190+ bits; it is a
 * floor for obvious mistakes, not a password meter.
 */

export const MIN_TOKEN_LENGTH = 32;
export const MIN_TOKEN_BITS = 128;

/** The fix an operator is told about: a command that makes a token well above the floor. */
export const TOKEN_ADVICE = 'generate one with `openssl rand -base64 32`';

function shannonBitsPerSymbol(symbols: readonly (string | number)[]): number {
  if (symbols.length === 0) return 0;
  const counts = new Map<string | number, number>();
  for (const s of symbols) counts.set(s, (counts.get(s) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / symbols.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Estimated bits of entropy in `token` (see the module comment). */
export function estimateTokenBits(token: string): number {
  const chars = [...token];
  const steps: number[] = [];
  for (let i = 1; i < chars.length; i++) steps.push(chars[i]!.codePointAt(0)! - chars[i - 1]!.codePointAt(0)!);
  return Math.min(chars.length * shannonBitsPerSymbol(chars), steps.length * shannonBitsPerSymbol(steps));
}

/** Why `token` is too weak for staging or production, or undefined when it is strong enough. */
export function weakTokenReason(token: string): string | undefined {
  const length = [...token].length;
  if (length < MIN_TOKEN_LENGTH) return `it has ${length} characters, fewer than ${MIN_TOKEN_LENGTH}`;
  const bits = Math.floor(estimateTokenBits(token));
  if (bits < MIN_TOKEN_BITS) return `it has about ${bits} bits of entropy, fewer than ${MIN_TOKEN_BITS} (repeated or sequential characters)`;
  return undefined;
}
