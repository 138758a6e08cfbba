/**
 * docs/grafana/fleet-dashboard.json against what a real coordinator serves on /metrics: every query in
 * the dashboard names only metrics the coordinator exports (a renamed metric breaks this test, not
 * the operator's dashboard), and every family the coordinator exports under `fleet_` is on it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/processes.js';
import { parseExposition } from '../support/prometheus-text.js';
import { startCoordinator, tempDir } from './helpers.js';

const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

interface Panel {
  title?: string;
  type: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function exprs(panels: Panel[]): { panel: string; expr: string }[] {
  return panels.flatMap((p) => [...(p.targets ?? []).flatMap((t) => (t.expr ? [{ panel: p.title ?? p.type, expr: t.expr }] : [])), ...exprs(p.panels ?? [])]);
}

/** Metric names in a PromQL expression: identifiers that are neither functions, keywords nor label names. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutLabels = withoutStrings.replace(/\{[^}]*\}/g, '{}').replace(/\b(by|without)\s*\([^)]*\)/g, '');
  return [...withoutLabels.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)].map((m) => m[1]!).filter((n) => /_/.test(n) && !/^\d/.test(n));
}

describe('the Grafana dashboard', () => {
  it('queries only metrics the coordinator exports, and shows every fleet_ family', { timeout: 60_000 }, async () => {
    const dashboard = JSON.parse(readFileSync(join(repoRoot, 'docs/grafana/fleet-dashboard.json'), 'utf8')) as { panels: Panel[]; uid: string };
    expect(dashboard.uid).toBe('fleet-coordinator');
    const { dir, cleanup } = tempDir();
    stops.push(cleanup);
    const c = await startCoordinator(dir);
    stops.push(() => c.stop());
    const res = await fetch(`${c.httpUrl}/metrics`, { headers: { authorization: `Bearer ${c.adminToken}` } });
    const families = parseExposition(await res.text());
    const exported = (name: string): boolean => families.has(name) || ['_bucket', '_sum', '_count'].some((s) => name.endsWith(s) && families.get(name.slice(0, -s.length))?.type === 'histogram');

    const queries = exprs(dashboard.panels);
    expect(queries.length).toBeGreaterThan(20);
    const used = new Set<string>();
    for (const q of queries) {
      const names = metricNames(q.expr);
      expect(names.length, `${q.panel}: ${q.expr} names a metric`).toBeGreaterThan(0);
      for (const n of names) {
        expect(exported(n), `${q.panel}: ${n} in ${q.expr} is exported by the coordinator`).toBe(true);
        used.add(n.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    const fleetFamilies = [...families.keys()].filter((n) => n.startsWith('fleet_'));
    expect(fleetFamilies.filter((n) => !used.has(n))).toEqual([]);
  });
});
