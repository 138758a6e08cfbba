/**
 * The AI risk scorer: an advisory GateAnalyzer (`ai`) that asks any OpenAI-compatible chat endpoint
 * (OpenAI, Ollama, vLLM, llama.cpp) for a structured risk assessment of a canary snapshot. I/O shell
 * around pure input building (ai-input.ts) and answer validation (ai-answer.ts).
 *
 * Guardrails (docs/canary-judge.md): temperature 0, no tools, the JSON schema sent as the
 * response format AND the answer re-validated with zod here (some servers ignore the schema and still
 * answer 200); a timeout, refusal, invalid JSON, schema violation or inconsistent answer is an error
 * record, never a verdict; the gate caps the AI at Monitor unless policy allows Abort. Every outcome
 * records model, prompt id, prompt hash, flag variant and input digest.
 */
import type { CanarySnapshot } from '@fleet/protocol/canary';
import { ConfigError } from '@fleet/protocol/errors';
import type { AnalyzerContext, AnalyzerOutcome, GateAnalyzer } from '../gate/analyzer.js';
import { AiAssessmentSchema, validateAnswer } from './ai-answer.js';
import { buildMessages, DEFAULT_AI_INPUT_LIMITS, type AiInputLimits } from './ai-input.js';
import { DEFAULT_PROMPT_ID, getPrompt, UnknownPromptError } from './ai-prompts.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface AiScorerConfig {
  /** OpenAI-compatible base URL, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1. */
  baseURL: string;
  /** API key (any non-empty string for servers that ignore it). */
  apiKey: string;
  model: string;
  /** Per-request timeout in ms. Default 30 000. */
  timeoutMs?: number;
  /** Prompt id. Default `risk-stable-v1`. */
  promptId?: string;
  limits?: Partial<AiInputLimits>;
  /** Whether to send the zod-derived JSON schema as `response_format`. Default true. */
  structuredOutput?: boolean;
}

export interface AiAnalyzerOptions {
  config: AiScorerConfig;
  /** The `canary.ai` flag variant that chose this prompt/model, recorded with the answer. */
  flagVariant?: string;
  /** Monotonic milliseconds for latency; default performance.now. */
  monotonicMs?: () => number;
}

/** Reads the AI scorer's configuration from FLEET_AI_* variables; undefined when no endpoint is set. */
export function aiConfigFromEnv(env: Record<string, string | undefined>): AiScorerConfig | undefined {
  const baseURL = env['FLEET_AI_BASE_URL'];
  if (!baseURL) return undefined;
  const model = env['FLEET_AI_MODEL'];
  if (!model) throw new ConfigError('FLEET_AI_MODEL is required when FLEET_AI_BASE_URL is set (e.g. gpt-4o-mini, llama3.1:8b)');
  const timeout = env['FLEET_AI_TIMEOUT_MS'] ? Number(env['FLEET_AI_TIMEOUT_MS']) : undefined;
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0)) throw new ConfigError('FLEET_AI_TIMEOUT_MS must be a positive integer of milliseconds');
  return {
    baseURL,
    apiKey: env['FLEET_AI_API_KEY'] || env['OPENAI_API_KEY'] || 'unused',
    model,
    ...definedProps({ timeoutMs: timeout }),
    ...(env['FLEET_AI_PROMPT'] ? { promptId: env['FLEET_AI_PROMPT'] } : {}),
  };
}

interface ErrorLike {
  name?: string;
  status?: number;
  message?: string;
}

function classifyError(err: unknown): { code: string; message: string } {
  const e = err as ErrorLike;
  const name = e?.name ?? '';
  if (name === 'APIConnectionTimeoutError' || /timed? ?out/i.test(e?.message ?? '')) return { code: 'ai-timeout', message: `no answer in time: ${e.message ?? name}` };
  if (name === 'APIUserAbortError' || name === 'AbortError') return { code: 'ai-aborted', message: 'the gate cancelled the request' };
  if (typeof e?.status === 'number') return { code: 'ai-http', message: `endpoint answered HTTP ${e.status}: ${(e.message ?? '').slice(0, 300)}` };
  if (name === 'APIConnectionError') return { code: 'ai-unreachable', message: `cannot reach the AI endpoint: ${e.message ?? ''}` };
  return { code: 'ai-error', message: (e?.message ?? String(err)).slice(0, 300) };
}

/** Creates the advisory AI analyzer. The openai SDK is loaded lazily on first use. */
export function createAiAnalyzer(options: AiAnalyzerOptions): GateAnalyzer {
  const { config } = options;
  const mono = options.monotonicMs ?? (() => performance.now());
  const promptId = config.promptId ?? DEFAULT_PROMPT_ID;
  const limits = { ...DEFAULT_AI_INPUT_LIMITS, ...config.limits };
  const timeoutMs = config.timeoutMs ?? 30_000;
  return {
    name: 'ai',
    role: 'advisory',
    async analyze(snapshot: CanarySnapshot, ctx: AnalyzerContext): Promise<AnalyzerOutcome> {
      const t0 = mono();
      const meta: Record<string, unknown> = { model: config.model, promptId, flagVariant: options.flagVariant ?? null };
      const fail = (code: string, message: string, extra: Record<string, unknown> = {}): AnalyzerOutcome => ({
        ok: false,
        error: { code, message },
        latencyMs: mono() - t0,
        meta: { ...meta, ...extra },
      });
      let prompt;
      try {
        prompt = getPrompt(promptId);
      } catch (err) {
        if (err instanceof UnknownPromptError) return fail(err.code, err.message);
        throw err;
      }
      meta['promptHash'] = prompt.hash;
      const messages = buildMessages(prompt.text, snapshot, limits);
      meta['inputDigest'] = messages.inputDigest;
      try {
        const [{ default: OpenAI }, { zodResponseFormat }] = await Promise.all([import('openai'), import('openai/helpers/zod')]);
        const client = new OpenAI({ baseURL: config.baseURL, apiKey: config.apiKey, timeout: timeoutMs, maxRetries: 0 });
        const completion = await client.chat.completions.create(
          {
            model: config.model,
            temperature: 0,
            messages: [
              { role: 'system', content: messages.system },
              { role: 'user', content: messages.user },
            ],
            ...(config.structuredOutput === false ? {} : { response_format: zodResponseFormat(AiAssessmentSchema, 'risk_assessment') }),
          },
          { ...definedProps({ signal: ctx.signal }), timeout: timeoutMs },
        );
        const choice = completion.choices[0];
        meta['servedModel'] = completion.model;
        if (completion.usage) meta['usage'] = { prompt: completion.usage.prompt_tokens, completion: completion.usage.completion_tokens };
        if (!choice) return fail('ai-invalid', 'the endpoint returned no choices');
        meta['finishReason'] = choice.finish_reason;
        const result = validateAnswer(choice.message.content ?? null, choice.message.refusal ?? null, promptId);
        if (!result.ok) return fail(result.code, result.message, result.raw !== undefined ? { raw: result.raw } : {});
        return { ok: true, verdict: result.verdict, latencyMs: mono() - t0, meta };
      } catch (err) {
        const c = classifyError(err);
        return fail(c.code, c.message);
      }
    },
  };
}
