/**
 * The registry of versioned AI prompts: id → text and sha256 hash. An unknown prompt id is an error,
 * never a silent fallback to another prompt. Pure.
 */
import { createHash } from 'node:crypto';
import { FleetError } from '@fleet/protocol/errors';
import { RISK_EXPERIMENTAL_V2 } from './prompts/risk-experimental-v2.js';
import { RISK_STABLE_V1 } from './prompts/risk-stable-v1.js';

export interface Prompt {
  id: string;
  channel: 'stable' | 'experimental';
  text: string;
  /** sha256 (hex) of the text: recorded with every answer. */
  hash: string;
}

const ALL = [RISK_STABLE_V1, RISK_EXPERIMENTAL_V2];

export const PROMPTS: ReadonlyMap<string, Prompt> = new Map(
  ALL.map((p) => [p.id, { id: p.id, channel: p.channel, text: p.text, hash: createHash('sha256').update(p.text, 'utf8').digest('hex') }]),
);

/** The default (stable) prompt id. */
export const DEFAULT_PROMPT_ID = RISK_STABLE_V1.id;

export class UnknownPromptError extends FleetError {
  constructor(id: string) {
    super('ai-unknown-prompt', `no AI prompt with id ${JSON.stringify(id)}; known prompts: ${[...PROMPTS.keys()].join(', ')} — fix the canary.ai flag variant or FLEET_AI_PROMPT`);
  }
}

/** The prompt with this id; throws UnknownPromptError otherwise. */
export function getPrompt(id: string): Prompt {
  const p = PROMPTS.get(id);
  if (!p) throw new UnknownPromptError(id);
  return p;
}
