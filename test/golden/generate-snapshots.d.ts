/** Types for the seeded golden snapshot generator (generate-snapshots.js). */
import type { CanarySnapshotInput, Recommendation } from '../../protocol/canary.js';

export const SCENARIOS: Record<string, [Recommendation, string, (seed?: number) => CanarySnapshotInput]>;
export function makeScenario(name: string, seed: number): CanarySnapshotInput;
export function generateAll(): Record<string, { label: Recommendation; description: string; snapshot: CanarySnapshotInput }>;
