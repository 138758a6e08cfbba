/**
 * The AI regression gate: runs the golden set against a configured OpenAI-compatible endpoint and fails
 * below a score threshold. Runs only when FLEET_AI_BASE_URL and FLEET_AI_MODEL are set (optionally
 * FLEET_AI_API_KEY, FLEET_AI_PROMPT, FLEET_AI_TIMEOUT_MS, FLEET_AI_MIN_SCORE, default 0.75); otherwise
 * it is skipped with a message. CI runs it against nothing but 127.0.0.1 unless an endpoint is set.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { aiConfigFromEnv, createAiAnalyzer } from '../../coordinator/canary/ai-scorer.js';
import { loadLabelledCases, runRegression } from '../../coordinator/canary/ai-regression.js';
import { writeGoldenSet } from './generate.js';

const config = aiConfigFromEnv(process.env);
const threshold = Number(process.env['FLEET_AI_MIN_SCORE'] ?? '0.75');

if (!config) {
  console.info('AI regression suite skipped: set FLEET_AI_BASE_URL and FLEET_AI_MODEL (and FLEET_AI_API_KEY if needed) to run the golden set against an endpoint');
}

describe.skipIf(!config)('AI regression gate (configured endpoint)', () => {
  it(`agrees with the golden labels on at least ${threshold * 100}% of snapshots`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-golden-ai-'));
    await writeGoldenSet(dir);
    const cases = await loadLabelledCases(dir);
    rmSync(dir, { recursive: true, force: true });
    const report = await runRegression(createAiAnalyzer({ config: { timeoutMs: 120_000, ...config! } }), cases, DEFAULT_GATE_POLICY, threshold);
    for (const c of report.cases) console.info(`${c.got === c.label ? 'ok  ' : 'MISS'} ${c.name}: label ${c.label}, got ${c.got ?? `error ${c.error?.code}`}`);
    console.info(`AI score ${report.score.toFixed(2)} (${report.agreed}/${report.cases.length}), ${report.errors} errors, ${report.unsafe} unsafe`);
    expect(report.score).toBeGreaterThanOrEqual(threshold);
  }, 30 * 60_000);
});
