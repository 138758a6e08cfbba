/**
 * The AI regression gate's plumbing, against a local OpenAI-compatible server started here: a model that
 * knows the labels passes, one that errs or answers garbage fails, errors count as misses, and
 * `fleet canary eval` reports and enforces the threshold.
 */
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_GATE_POLICY } from '../../coordinator/gate/analyzer.js';
import { createAiAnalyzer } from '../../coordinator/canary/ai-scorer.js';
import { loadLabelledCases, runRegression, scoreResults } from '../../coordinator/canary/ai-regression.js';
import { registerCanaryCommands } from '../../coordinator/canary/cli.js';
import { FakeOpenAiServer, type FakeBehaviour, type RecordedRequest } from '../canary/fake-openai-server.js';
import { sharedGoldenSet } from './shared-golden-set.js';

let dir: string;
const server = new FakeOpenAiServer();
beforeAll(async () => {
  dir = await sharedGoldenSet();
  await server.start();
}, 120_000);
afterAll(async () => {
  await server.stop();
});
const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

const RISK = { Proceed: 'Low', Monitor: 'Medium', Abort: 'High' } as const;
/** An "oracle" model: reads the deployment id (golden-<name>) from the evidence and answers the label. */
function oracle(labels: Record<string, string>, wrongFor: ReadonlySet<string> = new Set(), garbageFor: ReadonlySet<string> = new Set()) {
  return (req: RecordedRequest): FakeBehaviour => {
    const name = /"deploymentId":"golden-([a-z0-9-]+)"/.exec(req.body.messages[1]!.content)?.[1] ?? '';
    if (garbageFor.has(name)) return { kind: 'content', content: '{"riskLevel": "Low"' };
    let rec = labels[name] as 'Proceed' | 'Monitor' | 'Abort';
    if (wrongFor.has(name)) rec = rec === 'Proceed' ? 'Monitor' : 'Proceed';
    return { kind: 'content', content: JSON.stringify({ riskLevel: RISK[rec], recommendation: rec, issues: [], confidence: 0.8, rationale: name }) };
  };
}

describe('AI regression plumbing', () => {
  it('scores exact agreement, counting errors as misses and Proceed-on-bad as unsafe', async () => {
    const cases = await loadLabelledCases(dir);
    const labels = Object.fromEntries(cases.map((c) => [c.name, c.label]));
    const analyzer = createAiAnalyzer({ config: { baseURL: server.baseURL, apiKey: 'k', model: 'oracle', timeoutMs: 5000 } });

    server.behaviour = oracle(labels);
    const good = await runRegression(analyzer, cases, DEFAULT_GATE_POLICY, 0.75);
    expect(good).toMatchObject({ score: 1, errors: 0, unsafe: 0, passed: true });
    expect(good.cases[0]!.meta).toMatchObject({ model: 'oracle', promptId: 'risk-stable-v1' });

    server.behaviour = oracle(labels, new Set(['crash-x5', 'leak-onset-midway', 'trial-failures', 'cpu-improvement']), new Set(['healthy-mixed', 'noisy-mixed']));
    const bad = await runRegression(analyzer, cases, DEFAULT_GATE_POLICY, 0.75);
    expect(bad.errors).toBe(2);
    expect(bad.unsafe).toBe(3);
    expect(bad.agreed).toBe(cases.length - 6);
    expect(bad.passed).toBe(false);
    expect(bad.cases.find((c) => c.name === 'healthy-mixed')?.error?.code).toBe('ai-invalid-json');
  });

  it('an empty run never passes', () => {
    expect(scoreResults('ai', [], 0).passed).toBe(false);
  });

  it('fleet canary eval reports and enforces the threshold', async () => {
    const cases = await loadLabelledCases(dir);
    server.behaviour = oracle(Object.fromEntries(cases.map((c) => [c.name, c.label])), new Set(['healthy-mixed']));
    process.env['FLEET_AI_BASE_URL'] = server.baseURL;
    process.env['FLEET_AI_MODEL'] = 'oracle';
    const run = async (...args: string[]) => {
      const program = new Command('fleet').exitOverride();
      registerCanaryCommands(program);
      const lines: string[] = [];
      const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(' ')));
      try {
        await program.parseAsync(['node', 'fleet', 'canary', 'eval', '--dir', dir, ...args]);
      } finally {
        spy.mockRestore();
      }
      return lines.join('\n');
    };
    const text = await run('--min-score', '0.9');
    expect(text).toContain('MISS healthy-mixed: label Proceed, got Monitor');
    await expect(run('--min-score', '0.99')).rejects.toThrow(/below 0.99/);
    // The statistical judge against the rubric's labels (the golden test lists its disagreements).
    expect(await run('--analyzer', 'stat', '--min-score', '0.9')).toMatch(/agree \(score 0\.9\d/);
  });
});
