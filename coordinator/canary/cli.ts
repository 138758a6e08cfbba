/**
 * `fleet canary judge --input snapshot.json [--analyzer stat|ai|both] [--json]`: judges a recorded
 * canary snapshot offline — the same snapshot format the coordinator records at each gate — with the
 * statistical judge, the AI risk scorer (FLEET_AI_* endpoint), or both combined by the gate's rule
 * (like the gate, an AI that cannot run is an error record and the statistical verdict stands).
 * `fleet canary plan` tells what a wave can detect before it starts (soak-planner.ts), and
 * `fleet canary prompts` lists the versioned AI prompts with their hashes.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CANARY_SNAPSHOT_VERSIONS, CanarySnapshotSchema, type Verdict } from '@fleet/protocol/canary';
import { ConfigError, FleetError } from '@fleet/protocol/errors';
import { parsePayload } from '@fleet/protocol/parse';
import { DEFAULT_GATE_POLICY, type GateAnalyzer, type GatePolicy } from '../gate/analyzer.js';
import { abstained, combineOutcomes, defaultRole, type NamedOutcome } from '../gate/combine.js';
import { GatePolicySchema } from '../gate/policy.js';
import { aiConfigFromEnv, createAiAnalyzer } from './ai-scorer.js';
import { aiUnavailable } from './analyzers-for.js';
import { canariesNeeded, planPower, soakNeeded } from './soak-planner.js';
import { parseDuration, formatDuration } from '@fleet/firmware/duration';
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
      const parsed = parsePayload(CanarySnapshotSchema, await readFile(opts.input, 'utf8'), `canary snapshot ${opts.input}`, CANARY_SNAPSHOT_VERSIONS);
      if (!parsed.ok) throw parsed.error;
      const snapshot = parsed.value;
      const policy = await loadPolicy(opts.policy);
      const analyzers: GateAnalyzer[] = [];
      if (opts.analyzer !== 'ai') analyzers.push(createStatAnalyzer());
      if (opts.analyzer !== 'stat') {
        const env = aiConfigFromEnv({ ...process.env, ...(opts.model ? { FLEET_AI_MODEL: opts.model } : {}) });
        // As at the gate: an AI that cannot run is an error record; with `both` the statistical verdict stands.
        if (!env) analyzers.push(aiUnavailable('ai-not-configured', 'no AI endpoint is configured (set FLEET_AI_BASE_URL and FLEET_AI_MODEL, and FLEET_AI_API_KEY if the server wants one)', {}));
        else analyzers.push(createAiAnalyzer({ config: { ...env, ...(opts.prompt ? { promptId: opts.prompt } : {}) } }));
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
        throw new FleetError('ai-failed', `the AI analyzer gave no verdict (${records[0]?.error?.code ?? 'error'}: ${records[0]?.error?.message ?? ''}); the statistical verdict is authoritative — rerun with --analyzer stat or both`);
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
    .command('plan')
    .description('what a canary wave can detect before it starts: the soak (or canary count) for a regression at a baseline rate')
    .requiredOption('--baseline <rate>', 'baseline events per device-day (e.g. crashes: 0.24)')
    .requiredOption('--detect <ratio>', 'regression to detect as a rate ratio, e.g. 2x or 1.5')
    .option('--canaries <n>', 'canary devices in the wave')
    .option('--soak <duration>', 'soak, e.g. 6h (with --canaries: the power at this soak)')
    .option('--control <n>', 'control devices compared with (the gate samples at most 1,000)', '1000')
    .option('--confidence <p>', 'wanted probability that the gate rolls the regression back', '0.8')
    .option('--json', 'machine-readable output')
    .action((opts: { baseline: string; detect: string; canaries?: string; soak?: string; control: string; confidence: string; json?: boolean }) => {
      const num = (v: string, what: string, ok: (x: number) => boolean): number => {
        const x = Number(v.replace(/x$/i, ''));
        if (!Number.isFinite(x) || !ok(x)) throw new ConfigError(`${what}: ${JSON.stringify(v)} is out of range`);
        return x;
      };
      const baseline = num(opts.baseline, '--baseline (events per device-day)', (x) => x > 0 && x <= 1000);
      const ratio = num(opts.detect, '--detect (rate ratio, e.g. 2x)', (x) => x > 1 && x <= 100);
      const control = num(opts.control, '--control', (x) => Number.isInteger(x) && x >= 1);
      const power = num(opts.confidence, '--confidence (0.5 to 0.99)', (x) => x >= 0.5 && x <= 0.99);
      if (opts.canaries === undefined && opts.soak === undefined) throw new ConfigError('give --canaries (to get the soak needed), --soak (to get the canaries needed), or both');
      const canaries = opts.canaries === undefined ? undefined : num(opts.canaries, '--canaries', (x) => Number.isInteger(x) && x >= 1);
      const soakH = opts.soak === undefined ? undefined : parseDuration(opts.soak) / 3_600_000;
      const q = { control, baselinePerDeviceDay: baseline, ratio };
      const neededSoakH = canaries !== undefined ? soakNeeded({ ...q, canaries }, power) : undefined;
      const neededCanaries = soakH !== undefined ? canariesNeeded({ ...q, soakH }, power) : undefined;
      const at = canaries !== undefined && soakH !== undefined ? planPower({ ...q, canaries, soakH }) : undefined;
      const hours = (h: number) => formatDuration(Math.round(h * 60) * 60_000);
      if (opts.json) {
        console.log(JSON.stringify({ baselinePerDeviceDay: baseline, ratio, control, confidence: power, ...(canaries !== undefined ? { canaries, soakNeededH: neededSoakH ?? null } : {}), ...(soakH !== undefined ? { soakH, canariesNeeded: neededCanaries ?? null } : {}), ...(at ? { power: at } : {}) }, null, 2));
        return;
      }
      console.log(`to roll back a ×${ratio} regression of a ${baseline}/device-day rate with ${Math.round(power * 100)} % probability (control ${control} devices):`);
      if (canaries !== undefined) console.log(`  ${canaries} canaries need a soak of ${neededSoakH === undefined ? 'more than 30 days' : hours(neededSoakH)}`);
      if (soakH !== undefined) console.log(`  a ${hours(soakH)} soak needs ${neededCanaries === undefined ? `more canaries than a ${control}-device control can be compared with` : `${neededCanaries} canaries`}`);
      if (at) {
        console.log(`  ${canaries} canaries over ${hours(soakH!)}: ${at.expectedBaseline.toFixed(1)} events expected at baseline, ${at.expectedRegressed.toFixed(1)} under the regression;`);
        console.log(`  the gate rolls it back with probability ${(at.powerAbort * 100).toFixed(0)} % and at least holds it with ${(at.powerHold * 100).toFixed(0)} %`);
      }
      console.log('  (best case: one hardware model, devices reporting throughout, no device more crash-prone than another)');
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
