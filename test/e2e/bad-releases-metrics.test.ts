/**
 * End to end: a battery, CPU, memory and crash-rate regression, rolled out one after another to the
 * same 1,000-device fleet (real coordinator, real agents), are each aborted early from the canaries'
 * telemetry — exposure within the first wave plus the devices still installing when the abort fired —
 * and every exposed device comes back. One simulation; each release is its own case. The other bad
 * behaviours are in bad-releases-subtle and bad-releases-boot: three simulations the e2e workers run
 * side by side instead of one three times as long.
 */
import { describe } from 'vitest';
import { badReleaseCases } from './e2e-helpers.js';

describe('bad releases: metric regressions, 1,000 devices', () => {
  // A 5% canary that soaks an hour: a 1% wave (about ten devices) cannot judge a battery or CPU shift.
  badReleaseCases('bad-releases-metrics', ['battery-drain', 'cpu-regression', 'memory-regression', 'crash-rate']);
});
