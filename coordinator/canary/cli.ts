/**
 * `fleet canary judge --input snapshot.json [--analyzer stat|ai|both] [--json]`: judges a recorded
 * canary snapshot offline — the same snapshot format the coordinator records at each gate — with the
 * statistical judge, the AI risk scorer (FLEET_AI_* endpoint), or both combined by the gate's rule.
 * And `fleet canary prompts` lists the versioned AI prompts with their hashes.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CanarySnapshotSchema, type Verdict } from '../../protocol/canary.js';
import { ConfigError, FleetError } from '../../protocol/errors.js';
import { parsePayload } from '../../protocol/parse.js';
import { DEFAULT_GATE_POLICY, type GateAnalyzer, type GatePolicy } from '../gate/analyzer.js';
import { abstained, combineOutcomes, defaultRole, type NamedOutcome } from '../gate/combine.js';
import { GatePolicySchema } from '../gate/policy.js';
import { aiConfigFromEnv, createAiAnalyzer } from './ai-scorer.js';
import { PROMPTS } from './ai-prompts.js';
import { createStatAnalyzer } from './stat-judge.js';
import { loadLabelledCases, runRegression } from './ai-regression.js';

interface JudgeOptions {
  input: string;
  analyzer: string;
  json?: boolean;
  policy?: string;
  prompt?: string;
  model?: string;
  exitCode?: boolean;
}

function printVerdict(name: string, v: Verdict): void {
  console.log(`${name}: ${v.recommendation} (risk ${v.riskLevel}${v.score !== undefined ? `, score ${v.score}` : ''}) — rule ${v.rule}`);
  for (const i of v.issues) console.log(`  - ${i}`);
}

async function loadPolicy(path: string | undefined): Promise<GatePolicy> {
  if (!path) return DEFAULT_GATE_POLICY;
  const parsed = parsePayload(GatePolicySchema, await readFile(path, 'utf8'), `gate policy ${path}`);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

export function registerCanaryCommands(program: Command): Command {
  const canary = program.command('canary').description('canary analysis: judge recorded snapshots offline');

  canary
    .command('judge')
    .description('judge a canary snapshot (the file the coordinator records at each wave gate)')
    .requiredOption('--input <file>', 'canary snapshot JSON')
    .option('--analyzer <which>', 'stat, ai or both (AI endpoint from FLEET_AI_BASE_URL, FLEET_AI_MODEL, FLEET_AI_API_KEY)', 'stat')
    .option('--policy <file>', 'gate policy JSON (default: the built-in policy)')
    .option('--prompt <id>', 'AI prompt id (default FLEET_AI_PROMPT or risk-stable-v1)')
    .option('--model <name>', 'AI model (default FLEET_AI_MODEL)')
    .option('--exit-code', 'exit 0 on Proceed, 10 on Monitor, 11 on Abort')
    .option('--json', 'machine-readable output')
    .action(async (opts: JudgeOptions) => {
      if (!['stat', 'ai', 'both'].includes(opts.analyzer)) throw new ConfigError(`--analyzer must be stat, ai or both, not ${opts.analyzer}`);
      const parsed = parsePayload(CanarySnapshotSchema, await readFile(opts.input, 'utf8'), `canary snapshot ${opts.input}`);
      if (!parsed.ok) throw parsed.error;
      const snapshot = parsed.value;
      const policy = await loadPolicy(opts.policy);
      const analyzers: GateAnalyzer[] = [];
      if (opts.analyzer !== 'ai') analyzers.push(createStatAnalyzer());
      if (opts.analyzer !== 'stat') {
        const env = aiConfigFromEnv({ ...process.env, ...(opts.model ? { FLEET_AI_MODEL: opts.model } : {}) });
        if (!env) throw new ConfigError('the AI analyzer needs an endpoint: set FLEET_AI_BASE_URL and FLEET_AI_MODEL (and FLEET_AI_API_KEY if the server wants one)');
        analyzers.push(createAiAnalyzer({ config: { ...env, ...(opts.prompt ? { promptId: opts.prompt } : {}) } }));
      }
      const outcomes: NamedOutcome[] = [];
      for (const a of analyzers) outcomes.push({ name: a.name, role: defaultRole(a.name, a.role), outcome: await a.analyze(snapshot, { policy, now: Date.now() }) });
      const { records, final } = combineOutcomes(outcomes, policy);
      if (opts.json) {
        console.log(JSON.stringify({ deploymentId: snapshot.deploymentId, wave: snapshot.wave, final, analyzers: records }, null, 2));
      } else {
        console.log(`snapshot ${snapshot.deploymentId} wave ${snapshot.wave + 1}: ${snapshot.devices.filter((d) => d.cohort === 'canary').length} canary vs ${snapshot.devices.filter((d) => d.cohort === 'control').length} control devices`);
        for (const r of records) {
          if (r.verdict) printVerdict(r.name, r.verdict);
          else console.log(`${r.name}: ${abstained(r.error?.code ?? '') ? 'abstained' : 'error'} ${r.error?.code ?? '?'} — ${r.error?.message ?? ''} (no verdict)`);
          if (r.meta && r.name === 'ai') console.log(`  model ${String(r.meta['model'])}, prompt ${String(r.meta['promptId'])} (${String(r.meta['promptHash']).slice(0, 12)}), input ${String(r.meta['inputDigest']).slice(0, 12)}`);
        }
        console.log(`final: ${final.recommendation} (risk ${final.riskLevel}) — ${final.rule}`);
      }
      if (opts.exitCode) process.exitCode = final.recommendation === 'Proceed' ? 0 : final.recommendation === 'Monitor' ? 10 : 11;
      if (opts.analyzer === 'ai' && records.every((r) => !r.ok)) {
        throw new FleetError('ai-failed', `the AI analyzer gave no verdict (${records[0]?.error?.code ?? 'error'}); the statistical verdict is authoritative — rerun with --analyzer stat`);
      }
    });

  canary
    .command('eval')
    .description('score an analyzer against a directory of labelled snapshots (labels.json + <name>.json), e.g. test/golden/snapshots')
    .requiredOption('--dir <dir>', 'directory of labelled snapshots')
    .option('--analyzer <which>', 'stat or ai', 'ai')
    .option('--prompt <id>', 'AI prompt id')
    .option('--model <name>', 'AI model (default FLEET_AI_MODEL)')
    .option('--min-score <fraction>', 'fail below this share of exact agreements', '0.75')
    .option('--json', 'machine-readable output')
    .action(async (opts: { dir: string; analyzer: string; prompt?: string; model?: string; minScore: string; json?: boolean }) => {
      const threshold = Number(opts.minScore);
      if (!(threshold >= 0 && threshold <= 1)) throw new ConfigError('--min-score must be a fraction from 0 to 1');
      let analyzer: GateAnalyzer;
      if (opts.analyzer === 'stat') analyzer = createStatAnalyzer();
      else if (opts.analyzer === 'ai') {
        const env = aiConfigFromEnv({ ...process.env, ...(opts.model ? { FLEET_AI_MODEL: opts.model } : {}) });
        if (!env) throw new ConfigError('set FLEET_AI_BASE_URL and FLEET_AI_MODEL to evaluate the AI analyzer');
        analyzer = createAiAnalyzer({ config: { ...env, ...(opts.prompt ? { promptId: opts.prompt } : {}) } });
      } else throw new ConfigError(`--analyzer must be stat or ai, not ${opts.analyzer}`);
      const report = await runRegression(analyzer, await loadLabelledCases(opts.dir), DEFAULT_GATE_POLICY, threshold);
      if (opts.json) console.log(JSON.stringify(report, null, 2));
      else {
        for (const c of report.cases) console.log(`${c.got === c.label ? 'ok  ' : 'MISS'} ${c.name}: label ${c.label}, got ${c.got ?? `error ${c.error?.code ?? '?'}`} (${Math.round(c.latencyMs)} ms)`);
        console.log(`${report.analyzer}: ${report.agreed}/${report.cases.length} agree (score ${report.score.toFixed(2)}, threshold ${threshold}); ${report.errors} errors, ${report.unsafe} unsafe Proceed`);
      }
      if (!report.passed) throw new FleetError('eval-failed', `score ${report.score.toFixed(2)} is below ${threshold}`);
    });

  canary
    .command('prompts')
    .description('list the versioned AI prompts with their hashes')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const rows = [...PROMPTS.values()].map((p) => ({ id: p.id, channel: p.channel, hash: p.hash, chars: p.text.length }));
      if (opts.json) console.log(JSON.stringify(rows, null, 2));
      else for (const r of rows) console.log(`${r.id}\t${r.channel}\tsha256 ${r.hash}\t${r.chars} chars`);
    });

  return canary;
}
