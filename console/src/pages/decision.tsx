/**
 * One gate decision: its verdict, rule and issues, every analyzer's verdict with its evidence, and
 * canary against control over the window the gate judged — per metric and per event rate.
 */
import { useMemo } from 'preact/hooks';
import { ApiError, call, enc } from '../api.js';
import { href } from '../router.js';
import { putDecision, useStore } from '../store.js';
import { clockTime, dateTime, duration, metricLabel, num, who } from '../format.js';
import type { CohortSeries, DecisionRecord } from '../types.js';
import { Badge, Card, Empty, ErrorBox, Loading, VerdictBadge, useFetch } from '../ui/common.js';
import { CANARY, CONTROL, Chart, type ChartSeries } from '../ui/chart.js';

/** Event rates, then metrics; whatever the decision's rule names (`critical:crashes`) comes first. */
function CohortCharts(props: { cohorts: CohortSeries; rule: string }) {
  const c = props.cohorts;
  const charts = useMemo(() => {
    const out: { key: string; title: string; series: ChartSeries[] }[] = [];
    for (const [e, v] of Object.entries(c.events)) {
      out.push({
        key: e,
        title: `${metricLabel(e)} per device-hour`,
        series: [{ label: 'canary', values: v.canary, color: CANARY, steps: true }, { label: 'control', values: v.control, color: CONTROL, dash: [6, 4], steps: true }],
      });
    }
    for (const [m, v] of Object.entries(c.metrics)) {
      out.push({ key: m, title: metricLabel(m), series: [{ label: 'canary', values: v.canary, color: CANARY }, { label: 'control', values: v.control, color: CONTROL, dash: [6, 4] }] });
    }
    const named = (key: string): number => (new RegExp(`\\b${key}\\b`).test(props.rule) ? 0 : 1);
    return out.map((x, i) => ({ x, i })).sort((a, b) => named(a.x.key) - named(b.x.key) || a.i - b.i).map(({ x }) => x);
  }, [c, props.rule]);
  if (c.t.length === 0) return <Empty>This snapshot has no time slots (format 1): the totals above are what the gate compared.</Empty>;
  return (
    <div class="charts">
      {charts.map((ch) => (
        <Chart key={ch.key} title={ch.title} x={c.t} series={ch.series} />
      ))}
    </div>
  );
}

function Totals(props: { cohorts: CohortSeries }) {
  const { canary, control } = props.cohorts.totals;
  const rate = (n: number, h: number): string => (h > 0 ? num(n / h, 3) : '–');
  const metrics = [...new Set([...Object.keys(canary.metrics), ...Object.keys(control.metrics)])] as (keyof typeof canary.metrics)[];
  return (
    <table class="table compare">
      <thead>
        <tr>
          <th />
          <th class="canary">canary</th>
          <th class="control">control</th>
        </tr>
      </thead>
      <tbody>
        <tr>
          <td>devices</td>
          <td>{canary.devices}</td>
          <td>{control.devices}</td>
        </tr>
        <tr>
          <td>device-hours</td>
          <td>{num(canary.exposureH, 1)}</td>
          <td>{num(control.exposureH, 1)}</td>
        </tr>
        {(['crashes', 'errors', 'reboots', 'agentRestarts'] as const).map((e) => (
          <tr key={e}>
            <td>{metricLabel(e)} / device-hour</td>
            <td>
              {rate(canary.events[e], canary.exposureH)} <span class="muted small">({canary.events[e]})</span>
            </td>
            <td>
              {rate(control.events[e], control.exposureH)} <span class="muted small">({control.events[e]})</span>
            </td>
          </tr>
        ))}
        {metrics.map((m) => (
          <tr key={m}>
            <td>{metricLabel(m)} (mean)</td>
            <td>{num(canary.metrics[m], 2)}</td>
            <td>{num(control.metrics[m], 2)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Analyzers(props: { decision: DecisionRecord }) {
  return (
    <div class="analyzers">
      {props.decision.analyzers.map((a) => (
        <div class="analyzer" key={a.name} data-analyzer={a.name}>
          <div class="analyzer-head">
            <b>{a.name}</b> <span class="muted small">{a.role}</span>
            {a.ok && a.verdict ? <VerdictBadge verdict={a.verdict.recommendation} /> : <Badge tone="muted">{a.error?.code ?? 'no verdict'}</Badge>}
            {a.applied && a.applied !== a.verdict?.recommendation ? <span class="small muted">applied as {a.applied}</span> : null}
            <span class="small muted">{a.latencyMs < 1000 ? `${Math.round(a.latencyMs)} ms` : duration(a.latencyMs)}</span>
          </div>
          {a.verdict ? (
            <>
              <div class="small">
                rule <code>{a.verdict.rule}</code> · risk {a.verdict.riskLevel}
                {a.verdict.score !== undefined ? ` · score ${num(a.verdict.score, 1)}` : ''}
              </div>
              {a.verdict.issues.length ? (
                <ul class="issues">
                  {a.verdict.issues.map((i) => (
                    <li key={i}>{i}</li>
                  ))}
                </ul>
              ) : null}
              {a.verdict.evidence.length ? (
                <details>
                  <summary>Evidence ({a.verdict.evidence.length})</summary>
                  <table class="table evidence">
                    <tbody>
                      {a.verdict.evidence.map((ev, i) => (
                        <tr key={i} class={`ev-${ev.result}`}>
                          <td class="mono">{ev.check}</td>
                          <td>
                            <Badge tone={ev.result === 'pass' ? 'good' : ev.result === 'nodata' ? 'muted' : ev.result === 'critical' ? 'bad' : 'warn'}>{ev.result}</Badge>
                          </td>
                          <td class="values">
                            {Object.entries(ev.values)
                              .map(([k, v]) => `${k}=${typeof v === 'number' ? num(v, 4) : String(v)}`)
                              .join('  ')}
                            {ev.note ? <div class="muted small">{ev.note}</div> : null}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </details>
              ) : null}
            </>
          ) : a.error ? (
            <div class="small bad-text">{a.error.message}</div>
          ) : null}
        </div>
      ))}
    </div>
  );
}

export function DecisionPage(props: { id: string; decisionId: string }) {
  const s = useStore();
  const fetched = useFetch(`decisions:${props.id}`, async () => {
    const r = await call<{ decisions: DecisionRecord[] }>('GET', `/v1/deployments/${enc(props.id)}/decisions`);
    for (const x of r.decisions) putDecision(x);
    return r.decisions;
  });
  const cohorts = useFetch(`cohorts:${props.id}:${props.decisionId}`, () =>
    call<CohortSeries>('GET', `/v1/deployments/${enc(props.id)}/decisions/${enc(props.decisionId)}/cohorts`),
  );
  const decision = (s.decisions.get(props.id) ?? []).find((x) => x.id === props.decisionId);
  if (!decision) return fetched.error !== undefined ? <ErrorBox error={fetched.error} /> : fetched.loading ? <Loading /> : <ErrorBox error={`No decision ${props.decisionId}.`} />;
  const f = decision.final;
  return (
    <div class="page">
      <nav class="crumbs">
        <a href={href.deployments}>Deployments</a> / <a href={href.deployment(props.id)}>{props.id}</a> / decision
      </nav>
      <h1>
        Wave {decision.wave + 1} gate <VerdictBadge verdict={f.recommendation} />
      </h1>
      <p class="muted">
        {decision.source} · attempt {decision.attempt} · {dateTime(decision.at)} · risk {f.riskLevel}
        {decision.actor ? ` · by ${who(decision.actor)}` : ''}
      </p>
      <Card title="Verdict">
        <p>
          Rule <code class="rule">{f.rule}</code>
        </p>
        {f.issues.length ? (
          <ul class="issues">
            {f.issues.map((i) => (
              <li key={i}>{i}</li>
            ))}
          </ul>
        ) : (
          <p class="muted">No issues found.</p>
        )}
        <p class="small muted mono">inputs {decision.inputsDigest.slice(0, 16)}…</p>
      </Card>
      <Card title="Canary against control" class="cohorts">
        {cohorts.data ? (
          <>
            <p class="small muted">
              {cohorts.data.toVersion} against {cohorts.data.fromVersions.join(', ') || 'the fleet'} · window {clockTime(cohorts.data.window.from)}–{clockTime(cohorts.data.window.to)}
              {cohorts.data.slotMs ? ` in ${cohorts.data.t.length} slots of ${duration(cohorts.data.slotMs)}` : ''}
            </p>
            <Totals cohorts={cohorts.data} />
            <CohortCharts cohorts={cohorts.data} rule={f.rule} />
          </>
        ) : cohorts.error instanceof ApiError && cohorts.error.status === 404 ? (
          <Empty>{cohorts.error.message}</Empty>
        ) : cohorts.error !== undefined ? (
          <ErrorBox error={cohorts.error} />
        ) : (
          <Loading />
        )}
      </Card>
      <Card title="Analyzers">
        <Analyzers decision={decision} />
      </Card>
    </div>
  );
}
