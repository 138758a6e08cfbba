/**
 * The AI scorer's answer schema and its validation on our side: refusal, invalid JSON, schema
 * violations and inconsistent answers (Low + Abort, High/Critical + Proceed) are errors with codes,
 * never verdicts. Pure.
 */
import { z } from 'zod';
import { RecommendationSchema, RiskLevelSchema, type Verdict } from '@fleet/protocol/canary';
import { errorMessage } from '@fleet/protocol/errors';

/** The structured output asked of the model. Every field required (OpenAI strict mode). */
export const AiAssessmentSchema = z.object({
  riskLevel: RiskLevelSchema,
  recommendation: RecommendationSchema,
  issues: z.array(z.string().max(400)).max(12),
  confidence: z.number().min(0).max(1),
  rationale: z.string().max(2000),
});
export type AiAssessment = z.infer<typeof AiAssessmentSchema>;

export type AnswerResult =
  | { ok: true; verdict: Verdict; assessment: AiAssessment }
  | { ok: false; code: 'ai-refusal' | 'ai-invalid-json' | 'ai-schema' | 'ai-inconsistent' | 'ai-empty'; message: string; raw?: string };

const clip = (s: string, n = 500): string => (s.length > n ? `${s.slice(0, n)}…` : s);

/** Whether a risk level and recommendation contradict each other. */
export function isInconsistent(a: Pick<AiAssessment, 'riskLevel' | 'recommendation'>): boolean {
  if (a.riskLevel === 'Low' && a.recommendation === 'Abort') return true;
  if ((a.riskLevel === 'High' || a.riskLevel === 'Critical') && a.recommendation === 'Proceed') return true;
  return false;
}

/** Validates the message content (and refusal) of a chat completion. */
export function validateAnswer(content: string | null, refusal: string | null, promptId: string): AnswerResult {
  if (refusal) return { ok: false, code: 'ai-refusal', message: `the model refused: ${clip(refusal, 300)}` };
  if (content === null || content.trim() === '') return { ok: false, code: 'ai-empty', message: 'the model returned no content' };
  let json: unknown;
  try {
    // Some servers wrap JSON in a Markdown fence despite the schema; accept exactly one fenced object.
    const fenced = /^```(?:json)?\s*([\s\S]*?)\s*```$/.exec(content.trim());
    json = JSON.parse(fenced ? fenced[1]! : content);
  } catch (err) {
    return { ok: false, code: 'ai-invalid-json', message: `answer is not JSON: ${errorMessage(err)}`, raw: clip(content) };
  }
  const parsed = AiAssessmentSchema.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      code: 'ai-schema',
      message: `answer does not match the schema: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      raw: clip(content),
    };
  }
  const a = parsed.data;
  if (isInconsistent(a)) {
    return { ok: false, code: 'ai-inconsistent', message: `inconsistent answer: riskLevel ${a.riskLevel} with recommendation ${a.recommendation}`, raw: clip(content) };
  }
  return {
    ok: true,
    assessment: a,
    verdict: {
      recommendation: a.recommendation,
      riskLevel: a.riskLevel,
      issues: a.issues,
      rule: `ai:${promptId}`,
      evidence: [{
        check: 'ai-assessment',
        result: a.recommendation === 'Proceed' ? 'pass' : a.recommendation === 'Monitor' ? 'flag' : 'critical',
        values: { confidence: a.confidence, riskLevel: a.riskLevel, recommendation: a.recommendation },
        note: a.rationale,
      }],
    },
  };
}
