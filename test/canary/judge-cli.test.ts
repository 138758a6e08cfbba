/** `fleet canary judge` on golden snapshots (stat, ai against the local fake server, both) and `fleet deploy decisions`. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { registerCanaryCommands } from '../../coordinator/canary/cli.js';
import { formatDecisions, registerDecisionCommands } from '../../coordinator/canary/decisions-cli.js';
import type { DecisionRecord } from '../../coordinator/gate/decision.js';
import { FakeOpenAiServer } from './fake-openai-server.js';
import { writeGoldenSet } from '../golden/generate.js';

const snap = (name: string) => fileURLToPath(new URL(`../golden/v1/${name}.json`, import.meta.url));

async function run(register: (p: Command) => unknown, args: string[]): Promise<string> {
  const program = new Command('fleet').exitOverride();
  register(program);
  const lines: string[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(' ')));
  try {
    await program.parseAsync(['node', 'fleet', ...args]);
  } finally {
    spy.mockRestore();
  }
  return lines.join('\n');
}

const ai = new FakeOpenAiServer();
const savedEnv = { ...process.env };
beforeAll(() => ai.start());
afterAll(() => ai.stop());
afterEach(() => {
  process.env = { ...savedEnv };
  process.exitCode = undefined;
});

describe('fleet canary judge', () => {
  it('gives the statistical verdict with evidence as JSON', async () => {
    const out = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('crash-spike'), '--json'])) as {
      final: { recommendation: string; rule: string };
      analyzers: { name: string; verdict: { evidence: { check: string }[] } }[];
    };
    expect(out.final.recommendation).toBe('Abort');
    expect(out.final.rule).toContain('critical:crashes');
    expect(out.analyzers[0]!.verdict.evidence.find((e) => e.check === 'crashes')).toBeDefined();
  });

  it('prints a human summary and sets the exit code on request', async () => {
    const text = await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('healthy'), '--exit-code']);
    expect(text).toMatch(/final: Proceed/);
    expect(process.exitCode ?? 0).toBe(0);
    await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('new-error-signature'), '--exit-code']);
    expect(process.exitCode).toBe(10);
  });

  it('combines stat and AI so the AI escalates but never relaxes', async () => {
    process.env['FLEET_AI_BASE_URL'] = ai.baseURL;
    process.env['FLEET_AI_MODEL'] = 'fake-model';
    // The AI says Abort on a healthy snapshot: capped at Monitor by policy.
    ai.behaviour = { kind: 'content', content: JSON.stringify({ riskLevel: 'High', recommendation: 'Abort', issues: ['suspicious log'], confidence: 0.6, rationale: 'r' }) };
    let out = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('healthy'), '--analyzer', 'both', '--json'])) as { final: { recommendation: string }; analyzers: { name: string; applied?: string }[] };
    expect(out.final.recommendation).toBe('Monitor');
    expect(out.analyzers.find((a) => a.name === 'ai')?.applied).toBe('Monitor');
    // The AI says Proceed on a crash spike: the statistical Abort stands.
    ai.behaviour = { kind: 'content', content: JSON.stringify({ riskLevel: 'Low', recommendation: 'Proceed', issues: [], confidence: 0.9, rationale: 'r' }) };
    out = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('crash-spike'), '--analyzer', 'both', '--json'])) as typeof out;
    expect(out.final.recommendation).toBe('Abort');
    // An AI error is recorded; the statistical verdict stands.
    ai.behaviour = { kind: 'content', content: 'not json' };
    out = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('healthy'), '--analyzer', 'both', '--json'])) as typeof out;
    expect(out.final.recommendation).toBe('Proceed');
  });

  it('with --analyzer both and no AI endpoint, records the AI error and keeps the statistical verdict (as the gate does)', async () => {
    delete process.env['FLEET_AI_BASE_URL'];
    delete process.env['FLEET_AI_MODEL'];
    const out = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('crash-spike'), '--analyzer', 'both', '--json'])) as { final: { recommendation: string }; analyzers: { name: string; ok: boolean; error?: { code: string } }[] };
    expect(out.final.recommendation).toBe('Abort');
    expect(out.analyzers.find((a) => a.name === 'ai')).toMatchObject({ ok: false, error: { code: 'ai-not-configured' } });
    const text = await run(registerCanaryCommands, ['canary', 'judge', '--input', snap('healthy'), '--analyzer', 'both']);
    expect(text).toMatch(/ai: error ai-not-configured/);
    expect(text).toMatch(/final: Proceed/);
    // The AI alone gives no verdict: that is an error, with the way out named.
    await expect(run(registerCanaryCommands, ['canary', 'judge', '--input', snap('healthy'), '--analyzer', 'ai'])).rejects.toThrow(/no verdict \(ai-not-configured.*--analyzer stat or both/);
  });

  it('judges a v2 snapshot from the golden set with its strata and slots', async () => {
    const goldenDir = mkdtempSync(join(tmpdir(), 'fleet-golden-'));
    onTestFinished(() => rmSync(goldenDir, { recursive: true, force: true }));
    await writeGoldenSet(goldenDir, ['crash-x4-one-model']);
    const input = join(goldenDir, 'crash-x4-one-model.json');
    const out = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', input, '--json'])) as { final: { recommendation: string }; analyzers: { verdict: { evidence: { check: string }[] } }[] };
    expect(out.final.recommendation).toBe('Abort');
    expect(out.analyzers[0]!.verdict.evidence.map((e) => e.check)).toEqual(expect.arrayContaining(['crashes[gateway-x]', 'crashes@last-50%', 'lost-metrics']));
  });

  it('plans a soak: the soak needed, the canaries needed, and the power of a given wave', async () => {
    const soak = JSON.parse(await run(registerCanaryCommands, ['canary', 'plan', '--canaries', '200', '--baseline', '0.24', '--detect', '2x', '--json'])) as { soakNeededH: number };
    expect(soak.soakNeededH).toBeGreaterThan(6);
    expect(soak.soakNeededH).toBeLessThan(72);
    const both = JSON.parse(await run(registerCanaryCommands, ['canary', 'plan', '--canaries', '200', '--soak', '24h', '--baseline', '0.24', '--detect', '3', '--json'])) as { canariesNeeded: number; power: { powerAbort: number; powerHold: number } };
    expect(both.power.powerAbort).toBeGreaterThan(0.8);
    expect(both.power.powerHold).toBeGreaterThanOrEqual(both.power.powerAbort);
    expect(both.canariesNeeded).toBeLessThan(200);
    const text = await run(registerCanaryCommands, ['canary', 'plan', '--canaries', '10', '--soak', '30m', '--baseline', '0.24', '--detect', '2x']);
    expect(text).toMatch(/10 canaries need a soak of/);
    expect(text).toMatch(/rolls it back with probability 0 %/);
    await expect(run(registerCanaryCommands, ['canary', 'plan', '--baseline', '0.24', '--detect', '2x'])).rejects.toThrow(/--canaries/);
    await expect(run(registerCanaryCommands, ['canary', 'plan', '--canaries', '10', '--baseline', '0.24', '--detect', '0.5'])).rejects.toThrow(/--detect/);
  });

  it('refuses an invalid snapshot with a clear error', async () => {
    await expect(run(registerCanaryCommands, ['canary', 'judge', '--input', fileURLToPath(new URL('../golden/v1/labels.json', import.meta.url))])).rejects.toThrow(/canary snapshot .* is invalid/);
  });
});

describe('fleet deploy decisions', () => {
  const record: DecisionRecord = {
    id: 'd1', deploymentId: 'dep-1', wave: 0, attempt: 1, at: 1_800_000_000_000, source: 'gate', inputsDigest: 'ab'.repeat(32), policy: {},
    analyzers: [
      { name: 'stat', role: 'statistical', ok: true, latencyMs: 12, verdict: { recommendation: 'Abort', riskLevel: 'Critical', issues: ['crash rate 4x'], rule: 'critical:crashes', evidence: [{ check: 'crashes', result: 'critical', values: { rateRatio: 4 } }] }, applied: 'Abort' },
      { name: 'ai', role: 'advisory', ok: false, latencyMs: 30000, error: { code: 'ai-timeout', message: 'no answer' }, meta: { model: 'm', promptId: 'risk-stable-v1', promptHash: 'ff'.repeat(32), inputDigest: 'ee'.repeat(32), flagVariant: 'stable' } },
    ],
    final: { recommendation: 'Abort', riskLevel: 'Critical', rule: 'most-cautious: stat=Abort (critical:crashes)', issues: ['stat: crash rate 4x'] },
  };
  let server: Server;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/v1/deployments/dep-1/decisions/d1/snapshot' && req.headers.authorization === 'Bearer tok') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(readFileSync(snap('crash-spike')));
      } else if (req.url === '/v1/deployments/dep-1/decisions' && req.headers.authorization === 'Bearer tok') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ decisions: [record] }));
      } else res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not-found', message: 'no such deployment' } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('shows every analyzer, the rule, errors as non-verdicts and the AI metadata', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const text = await run(registerDecisionCommands, ['deploy', 'decisions', 'dep-1', '--url', url, '--token', 'tok', '--evidence']);
    expect(text).toContain('most-cautious: stat=Abort (critical:crashes)');
    expect(text).toContain('ai (advisory, 30000 ms): ERROR ai-timeout');
    expect(text).toContain('prompt risk-stable-v1');
    expect(text).toContain('crashes: critical {"rateRatio":4}');
    await expect(run(registerDecisionCommands, ['deploy', 'decisions', 'nope', '--url', url, '--token', 'tok'])).rejects.toThrow(/no such deployment/);
    expect(formatDecisions([])).toBe('');
  });

  it('saves a decision\'s snapshot for offline re-judging', async () => {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const out = join(mkdtempSync(join(tmpdir(), 'fleet-dec-')), 'snap.json');
    await run(registerDecisionCommands, ['deploy', 'decisions', 'dep-1', '--url', url, '--token', 'tok', '--snapshot', 'd1', '--out', out]);
    const judged = JSON.parse(await run(registerCanaryCommands, ['canary', 'judge', '--input', out, '--json'])) as { final: { recommendation: string } };
    expect(judged.final.recommendation).toBe('Abort');
  });
});
