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
import { combineOutcomes, defaultRole, type NamedOutcome } from '../gate/combine.js';
import { GatePolicySchema } from '../gate/policy.js';
import { aiConfigFromEnv, createAiAnalyzer } from './ai-scorer.js';
import { PROMPTS } from './ai-prompts.js';
import { createStatAnalyzer } from './stat-judge.js';

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
        console.log(`snapshot ${snapshot.deploymentId} wave ${snapshot.wave}: ${snapshot.devices.filter((d) => d.cohort === 'canary').length} canary vs ${snapshot.devices.filter((d) => d.cohort === 'control').length} control devices`);
        for (const r of records) {
          if (r.verdict) printVerdict(r.name, r.verdict);
          else console.log(`${r.name}: error ${r.error?.code ?? '?'} — ${r.error?.message ?? ''} (no verdict)`);
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
