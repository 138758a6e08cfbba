/** The AI's evidence carries what the statistical judge weighs: strata, the window's last slots, lost metrics. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CanarySnapshotSchema } from '../../protocol/canary.js';
import { buildEvidenceSummary, buildMessages } from '../../coordinator/canary/ai-input.js';

import { buildCase } from '../golden/golden-set.js';

const golden = async (name: string) => CanarySnapshotSchema.parse(JSON.parse(JSON.stringify(await buildCase(name))));

describe('AI input from a v2 snapshot', () => {
  it('has per-stratum rates, the last slots and the metrics canaries stopped reporting', async () => {
    const e = buildEvidenceSummary(await golden('battery-telemetry-lost'));
    expect(e.strata?.map((s) => s.stratum)).toEqual(expect.arrayContaining(['sensor-v2@2.0.3', 'gateway-x@2.0.3']));
    expect(e.lastSlots?.map((s) => s.segment)).toEqual(['last-50%', 'last-25%', 'last-8%']);
    expect(e.metricsCanariesStoppedReporting?.map((m) => m.metric)).toContain('batteryPct');
    expect(buildMessages('prompt', await golden('battery-telemetry-lost')).user).toContain('metricsCanariesStoppedReporting');
  });

  it('shows the storm in the last slots', async () => {
    const e = buildEvidenceSummary(await golden('crash-storm-last-hours'));
    const last = e.lastSlots!.at(-1)!;
    expect(Number(last.canaryRatesPerH['crashes'])).toBeGreaterThan(3 * Number(last.controlRatesPerH['crashes']));
  });

  it('leaves them out of a v1 snapshot of one model', () => {
    const v1 = CanarySnapshotSchema.parse(JSON.parse(readFileSync(new URL('../golden/v1/healthy.json', import.meta.url), 'utf8')));
    const e = buildEvidenceSummary(v1);
    expect(e).not.toHaveProperty('strata');
    expect(e).not.toHaveProperty('lastSlots');
    expect(e).not.toHaveProperty('metricsCanariesStoppedReporting');
  });
});
