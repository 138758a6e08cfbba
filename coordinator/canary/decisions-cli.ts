/**
 * `fleet deploy decisions <id>`: every gate decision of a deployment, read through the admin API
 * (`GET /v1/deployments/:id/decisions`), with each analyzer's verdict or error, latency, the final
 * verdict, the rule that produced it and the inputs digest. Adds itself to the `deploy` command group
 * (creating the group if no other module has yet).
 */
import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { CanarySnapshotSchema } from '@fleet/protocol/canary';
import { ValidationError } from '@fleet/protocol/errors';
import { formatIssues } from '@fleet/protocol/parse';
import { AdminClient, type ConnectionOptions } from '../cli/admin-client.js';
import { addConnectionOptions } from '../cli/device-commands.js';
import { DecisionRecordSchema, type DecisionRecord } from '../gate/decision.js';
import { abstained } from '../gate/combine.js';

const DecisionsResponseSchema = z.union([
  z.object({ decisions: z.array(DecisionRecordSchema) }).transform((r) => r.decisions),
  z.array(DecisionRecordSchema),
]);

/** Human rendering of decision records, oldest first. Pure. */
export function formatDecisions(decisions: readonly DecisionRecord[], opts: { evidence?: boolean } = {}): string {
  const out: string[] = [];
  for (const d of decisions) {
    // Waves are numbered from 1 here, as in `fleet deploy status` (the API's `wave` is the 0-based index).
    out.push(`${new Date(d.at).toISOString()}  wave ${d.wave + 1}${d.attempt ? ` attempt ${d.attempt}` : ''}  [${d.source}]  ${d.final.recommendation} (risk ${d.final.riskLevel})`);
    out.push(`  id ${d.id}; rule: ${d.final.rule}`);
    for (const i of d.final.issues.slice(0, 10)) out.push(`  - ${i}`);
    for (const a of d.analyzers) {
      const head = `  ${a.name} (${a.role}, ${Math.round(a.latencyMs)} ms)`;
      if (a.verdict) {
        const applied = a.applied && a.applied !== a.verdict.recommendation ? `, applied as ${a.applied}` : '';
        out.push(`${head}: ${a.verdict.recommendation}${applied}${a.verdict.score !== undefined ? `, score ${a.verdict.score}` : ''} — ${a.verdict.rule}`);
        if (opts.evidence) {
          for (const e of a.verdict.evidence) {
            if (e.result === 'pass') continue;
            out.push(`      ${e.check}: ${e.result} ${JSON.stringify(e.values)}${e.note ? ` (${e.note})` : ''}`);
          }
        }
      } else {
        const code = a.error?.code ?? '?';
        out.push(`${head}: ${abstained(code) ? 'abstained' : 'ERROR'} ${code} — ${a.error?.message ?? ''} (not a verdict)`);
      }
      const m = a.meta ?? {};
      const s = (k: string, dflt = '-'): string => (typeof m[k] === 'string' ? m[k] : dflt);
      if (m['promptId'] !== undefined) {
        out.push(`      model ${s('model')}, prompt ${s('promptId')} ${s('promptHash', '').slice(0, 12)}, variant ${s('flagVariant')}, input ${s('inputDigest', '').slice(0, 12)}`);
      }
    }
    out.push(`  inputs sha256 ${d.inputsDigest}${d.actor ? `, by ${d.actor}` : ''}`);
    out.push('');
  }
  return out.join('\n');
}

export function registerDecisionCommands(program: Command): Command {
  const deploy = program.commands.find((c) => c.name() === 'deploy') ?? program.command('deploy').description('deployments: create, watch, pause, resume, abort');
  addConnectionOptions(
    deploy
      .command('decisions <id>')
      .description('every gate decision of a deployment: analyzers, verdicts, rules and evidence')
      .option('--evidence', 'also show every non-passing check with its numbers')
      .option('--snapshot <decisionId>', 'save the canary snapshot that decision judged (re-judge it with `fleet canary judge --input`)')
      .option('--out <file>', 'where --snapshot writes (default: <decisionId>.snapshot.json)')
      .option('--json', 'machine-readable output'),
  ).action(async (id: string, opts: ConnectionOptions & { evidence?: boolean; snapshot?: string; out?: string; json?: boolean }) => {
    const client = AdminClient.resolve(opts);
    if (opts.snapshot) {
      const snap = await client.get<unknown>(`/v1/deployments/${encodeURIComponent(id)}/decisions/${encodeURIComponent(opts.snapshot)}/snapshot`);
      const parsed = CanarySnapshotSchema.safeParse(snap);
      if (!parsed.success) throw new ValidationError(`canary snapshot of decision ${opts.snapshot}`, formatIssues(parsed.error));
      const out = opts.out ?? `${opts.snapshot}.snapshot.json`;
      await writeFile(out, JSON.stringify(snap, null, 2) + '\n');
      return console.log(`saved the snapshot of decision ${opts.snapshot} to ${out}; judge it with: fleet canary judge --input ${out}`);
    }
    const raw = await client.get<unknown>(`/v1/deployments/${encodeURIComponent(id)}/decisions`);
    const parsed = DecisionsResponseSchema.safeParse(raw);
    if (!parsed.success) throw new ValidationError('decision records from the coordinator', formatIssues(parsed.error));
    if (opts.json) return console.log(JSON.stringify(parsed.data, null, 2));
    if (!parsed.data.length) return console.log(`no decisions yet for ${id}`);
    console.log(formatDecisions(parsed.data, opts.evidence ? { evidence: true } : {}));
  });
  return deploy;
}
