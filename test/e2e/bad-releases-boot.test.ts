/**
 * End to end: a release that boot-loops, then one that bricks half the devices it reaches, rolled out
 * to the same 1,000-device fleet (real coordinator, real agents): both are aborted in the first wave and
 * every exposed device the firmware did not kill comes back. Bricking comes last, since it takes
 * devices out of the fleet for good. One simulation; each release is its own case.
 */
import { describe, expect, it } from 'vitest';
import { badReleaseCases } from './e2e-helpers.js';

describe('bad releases: boot loop and brick, 1,000 devices', () => {
  const report = badReleaseCases('bad-releases-boot', ['boot-loop', 'brick']);

  it('bricks devices only through the firmware, never through the system', () => {
    const brick = report().releases.at(-1)!;
    expect(brick.bricked.byFirmware).toBeGreaterThan(0);
    expect(brick.bricked.bySystem).toBe(0);
    expect(report().ok).toBe(true);
  });
});
