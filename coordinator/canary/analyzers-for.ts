/**
 * Flag-driven analyzer selection for a deployment wave: `analyzersFor(deployment, wave)`, which the
 * engine's gate runner calls. The hard gates always run (no flag can turn them off); `canary.stat`
 * chooses whether the statistical judge runs; `canary.ai` chooses whether the AI risk scorer runs and,
 * through its variant's payload (`promptId`, `model`), which prompt and model it uses. The stickiness
 * key is the wave (`${deploymentId}:${wave}`), independent of which devices get the firmware. Killing
 * `canary.ai` turns the AI off fleet-wide at the next gate.
 */
import type { AnalyzerOutcome, GateAnalyzer } from '../gate/analyzer.js';
import { hardGatesAnalyzer } from '../gate/hard-gates.js';
import { CANARY_AI_FLAG, CANARY_STAT_FLAG, DEFAULT_FLAGS, evaluateFlag, waveKey, type FlagEvaluation } from '../flags/flag-model.js';
import { createAiAnalyzer, type AiScorerConfig } from './ai-scorer.js';
import type { JudgeConfig } from './judge-config.js';
import { judgeConfigFor, type JudgeSettings } from './judge-settings.js';
import { createStatAnalyzer } from './stat-judge.js';

export interface FlagEvaluator {
  evaluate(name: string, key: string): FlagEvaluation;
}

export interface AnalyzerSelectionDeps {
  flags: FlagEvaluator;
  /** The AI endpoint; when absent and the flag turns the AI on, an error record says so. */
  ai?: AiScorerConfig | undefined;
  judgeConfig?: JudgeConfig;
  /** Put the gate's hard-gates analyzer first. Default true. */
  includeHardGates?: boolean;
}

export interface AnalyzerSelection {
  analyzers: GateAnalyzer[];
  /** The flag evaluations that chose them (record them with the decision). */
  flags: FlagEvaluation[];
}

/** An analyzer that records why the AI could not run: an error record, never a verdict. */
export function aiUnavailable(code: string, message: string, meta: Record<string, unknown>): GateAnalyzer {
  return {
    name: 'ai',
    role: 'advisory',
    analyze: (): Promise<AnalyzerOutcome> => Promise.resolve({ ok: false, error: { code, message }, latencyMs: 0, meta }),
  };
}

/** Selects the analyzers for one wave gate from the current flags (and the deployment's judge settings). */
export function selectAnalyzers(deps: AnalyzerSelectionDeps, deploymentId: string, wave: number, judge?: JudgeSettings): AnalyzerSelection {
  const key = waveKey(deploymentId, wave);
  // A flag store that cannot be read must not stop the gate: fall back to the safe defaults (the
  // statistical judge on, the AI off).
  const evaluate = (name: string): FlagEvaluation => {
    try {
      return deps.flags.evaluate(name, key);
    } catch {
      const d = DEFAULT_FLAGS.find((f) => f.name === name)!;
      return { ...evaluateFlag(d, key), reason: 'default' };
    }
  };
  const stat = evaluate(CANARY_STAT_FLAG);
  const ai = evaluate(CANARY_AI_FLAG);
  const analyzers: GateAnalyzer[] = [];
  if (deps.includeHardGates ?? true) analyzers.push(hardGatesAnalyzer);
  if (stat.enabled) analyzers.push(createStatAnalyzer(deps.judgeConfig || judge ? { config: judgeConfigFor(judge, deps.judgeConfig) } : {}));
  if (ai.enabled) {
    const payload = ai.variant?.payload ?? {};
    const meta = { flagVariant: ai.variant?.name ?? null, flagVersion: ai.version };
    if (!deps.ai) {
      analyzers.push(aiUnavailable('ai-not-configured', 'the canary.ai flag is on but no AI endpoint is configured (set FLEET_AI_BASE_URL and FLEET_AI_MODEL)', meta));
    } else {
      const config: AiScorerConfig = {
        ...deps.ai,
        ...(payload['promptId'] ? { promptId: payload['promptId'] } : {}),
        ...(payload['model'] ? { model: payload['model'] } : {}),
      };
      analyzers.push(createAiAnalyzer({ config, ...(ai.variant ? { flagVariant: ai.variant.name } : {}) }));
    }
  }
  return { analyzers, flags: [stat, ai] };
}

/** The `analyzersFor(deployment, wave)` function the engine's gate runner takes. */
export function createAnalyzersFor(deps: AnalyzerSelectionDeps): (deployment: { id: string; judge?: JudgeSettings | undefined }, wave: number) => GateAnalyzer[] {
  return (deployment, wave) => selectAnalyzers(deps, deployment.id, wave, deployment.judge).analyzers;
}
