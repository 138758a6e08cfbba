/** The fleet at a glance: counts, models and versions, update states, anomalies, live deployments, activity. */
import { useEffect } from 'preact/hooks';
import { call } from '../api.js';
import { refreshSummary } from '../live.js';
import { href } from '../router.js';
import { useStore } from '../store.js';
import { ago, metricLabel, num } from '../format.js';
import type { DeploymentView } from '../types.js';
import { StackedBar } from '../ui/bar.js';
import { Badge, Card, Empty, Kpi, Loading, PhaseBadge, useFetch, useTicker } from '../ui/common.js';
import { AuditList } from './audit.js';

const VERSION_TONES = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'];
const FINISHED = new Set(['completed', 'aborted', 'rolled-back']);

export function deploymentProgress(d: DeploymentView): { committed: number; tracked: number } {
  let committed = 0;
  let tracked = 0;
  for (const w of d.waves) {
    committed += w.counts.committed ?? 0;
    tracked += w.counts.tracked ?? 0;
  }
  return { committed, tracked };
}

export function FleetPage() {
  const s = useStore();
  useTicker(5000);
  useEffect(() => refreshSummary(), []);
  const sum = s.summary;
  const live = [...s.deployments.values()].filter((d) => !FINISHED.has(d.phase)).sort((a, b) => b.createdAt - a.createdAt);
  const recent = [...s.deployments.values()].sort((a, b) => b.updatedAt - a.updatedAt).slice(0, 5);
  // The latest anomalies, reloaded when the count of devices with one changes.
  const anomalyKey = sum ? `${sum.devices.withAnomalies}:${Object.values(sum.anomalies).join(',')}` : null;
  const anomalies = useFetch(anomalyKey, () =>
    call<{ anomalies: { deviceId: string; kind: string; count: number; lastAt: number; detail: string }[] }>('GET', '/v1/anomalies?limit=6'),
  );
  const versionTone = new Map((sum?.versions ?? []).map((v, i) => [v.version, VERSION_TONES[i % VERSION_TONES.length]!]));

  return (
    <div class="page">
      <h1>Fleet</h1>
      {!sum ? (
        <Loading />
      ) : (
        <>
          <div class="kpis">
            <Kpi label="devices" value={num(sum.devices.total)} />
            <Kpi label="online" value={num(sum.devices.online)} tone="good" />
            <Kpi label="offline" value={num(sum.devices.offline)} tone={sum.devices.offline > 0 ? 'warn' : 'muted'} />
            <Kpi label="with anomalies" value={num(sum.devices.withAnomalies)} tone={sum.devices.withAnomalies > 0 ? 'bad' : 'muted'} />
            <Kpi label="live deployments" value={num(live.length)} tone={live.length ? 'good' : 'muted'} />
          </div>
          <div class="grid two">
            <Card title="Hardware models and versions">
              {sum.models.length === 0 ? (
                <Empty>No devices yet. Provision some with <code>fleet devices provision</code>.</Empty>
              ) : (
                <div class="models">
                  {sum.models.map((m) => (
                    <div class="model-row" key={m.hardwareModel ?? '?'}>
                      <div class="model-head">
                        <a href={`${href.devices}?model=${encodeURIComponent(m.hardwareModel ?? '')}`}>{m.hardwareModel ?? 'unknown model'}</a>
                        <span class="muted">
                          {num(m.online)} of {num(m.total)} online
                        </span>
                      </div>
                      <StackedBar
                        total={m.total}
                        label={`${m.hardwareModel ?? 'unknown'} by version`}
                        segments={m.versions.map((v) => ({ label: v.version ?? 'unknown', value: v.count, tone: versionTone.get(v.version) ?? 'muted' }))}
                      />
                    </div>
                  ))}
                </div>
              )}
            </Card>
            <Card title="Update state">
              <div class="chips">
                {Object.entries(sum.updateStates)
                  .sort((a, b) => b[1] - a[1])
                  .map(([state, n]) => (
                    <span class="chip" key={state}>
                      {state} <b>{num(n)}</b>
                    </span>
                  ))}
              </div>
              <h3>Anomalies</h3>
              {Object.keys(sum.anomalies).length === 0 ? (
                <Empty>No device has misbehaved.</Empty>
              ) : (
                <>
                  <div class="chips">
                    {Object.entries(sum.anomalies).map(([kind, n]) => (
                      <Badge tone="bad" key={kind}>
                        {metricLabel(kind)} · {n} {n === 1 ? 'device' : 'devices'}
                      </Badge>
                    ))}
                  </div>
                  <ul class="anomalies recent">
                    {(anomalies.data?.anomalies ?? []).map((a) => (
                      <li key={`${a.deviceId}:${a.kind}`}>
                        <a href={href.device(a.deviceId)}>{a.deviceId}</a> <span class="mono small">{a.kind}</span> ×{a.count} · {ago(a.lastAt)}
                        <div class="small muted">{a.detail}</div>
                      </li>
                    ))}
                  </ul>
                </>
              )}
              {sum.devices.ghosts > 0 ? <p class="warn-text">{sum.devices.ghosts} connected without being provisioned (ghosts: in no wave).</p> : null}
            </Card>
          </div>
        </>
      )}
      <div class="grid two">
        <Card title="Deployments" actions={<a href={href.deployments}>All deployments →</a>}>
          {recent.length === 0 ? (
            <Empty>No deployment yet. Create one with <code>fleet deploy create</code>.</Empty>
          ) : (
            <ul class="dep-list">
              {(live.length ? live : recent).map((d) => {
                const p = deploymentProgress(d);
                return (
                  <li key={d.id}>
                    <a href={href.deployment(d.id)} class="dep-link">
                      <span class="dep-title">
                        <b>{d.firmwareVersion}</b> <span class="muted mono">{d.id}</span>
                      </span>
                      <PhaseBadge phase={d.phase} paused={d.paused} />
                    </a>
                    <StackedBar
                      compact
                      total={p.tracked}
                      label={`${d.id} progress`}
                      segments={[{ label: 'committed', value: p.committed, tone: 'good' }]}
                    />
                    <span class="muted small">
                      {p.committed} of {p.tracked} committed · updated {ago(d.updatedAt)}
                    </span>
                  </li>
                );
              })}
            </ul>
          )}
        </Card>
        <Card title="Activity" actions={<a href={href.audit}>Audit log →</a>}>
          <AuditList entries={s.audit.slice(0, 8)} compact />
        </Card>
      </div>
    </div>
  );
}
