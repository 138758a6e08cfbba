import { describe, expect, it } from 'vitest';
import { FleetError, ValidationError, errorMessage } from '../../protocol/errors.js';

describe('errorMessage', () => {
  it.each([
    [new Error('disk full'), 'disk full'],
    [new FleetError('data-dir-lock', 'locked by pid 7'), 'locked by pid 7'],
    [new ValidationError('cron expression', ['hour 25']), 'cron expression is invalid: hour 25'],
    ['a thrown string', 'a thrown string'],
    [42, '42'],
    [undefined, 'undefined'],
    [null, 'null'],
  ])('%o → %s', (thrown, message) => {
    expect(errorMessage(thrown)).toBe(message);
  });
});
