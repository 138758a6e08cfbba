/**
 * End to end: a CPU shift too small for any critical bound, rolled out to a 1,000-device fleet (real
 * coordinator, real agents), keeps the gate at Monitor until its limit, which aborts the rollout early;
 * every exposed device comes back.
 */
import { describe } from 'vitest';
import { badReleaseCases } from './e2e-helpers.js';

describe('bad releases: a subtle shift, 1,000 devices', () => {
  badReleaseCases('bad-releases-subtle', ['subtle']);
});
