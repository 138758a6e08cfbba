/** One device: what it runs, its telemetry over time, its update history, anomalies and last error log. */
import { useEffect, useMemo } from 'preact/hooks';
import { call, enc } from '../api.js';
import { href } from '../router.js';
import { useStore } from '../store.js';
import { ago, clockTime, dateTime, metricLabel } from '../format.js';
import type { DeviceDetail, DeviceTelemetry } from '../types.js';
import { Badge, Card, Empty, ErrorBox, Loading, Online, StateBadge, useFetch, useTicker } from '../ui/common.js';
import { DEVICE, Chart, type ChartSeries } from '../ui/chart.js';

const EVENT_COLORS: Record<string, string> = { crashes: '#e03131', errors: '#f08c00', reboots: '#7048e8', agentRestarts: '#1098ad' };

function TelemetryCharts(props: { t: DeviceTelemetry }) {
  const t = props.t;
  const charts = useMemo(() => {
    const out: { key: string; title: string; series: ChartSeries[] }[] = [];
    for (const [m, v] of Object.entries(t.metrics)) {
      out.push({ key: m, title: metricLabel(m), series: [{ label: 'mean', values: v.mean, color: DEVICE }, { label: 'max', values: v.max, color: '#94a3b8', dash: [4, 4] }] });
    }
    out.push({
      key: 'events',
      title: 'Events per slot',
      series: Object.entries(t.events).map(([e, values]) => ({ label: metricLabel(e), values, color: EVENT_COLORS[e] ?? '#333', steps: true })),
    });
    return out;
  }, [t]);
  if (t.samples.every((n) => n === 0)) return <Empty>No telemetry in this window.</Empty>;
  return (
    <>
      <p class="small muted">
        {clockTime(t.from)}–{clockTime(t.to)} ·{' '}
        {t.versions.map((v, i) => (
          <span key={i}>
            {i > 0 ? ' → ' : ''}
            <b>{v.version}</b> from {clockTime(v.from)}
          </span>
        ))}
      </p>
      <div class="charts">
        {charts.map((c) => (
          <Chart key={c.key} title={c.title} x={t.t} series={c.series} />
        ))}
      </div>
    </>
  );
}

export function DevicePage(props: { id: string }) {
  const s = useStore();
  useTicker(5000);
  const detail = useFetch(`device:${props.id}`, () => call<DeviceDetail>('GET', `/v1/devices/${enc(props.id)}`));
  const tele = useFetch(`telemetry:${props.id}`, () => call<DeviceTelemetry>('GET', `/v1/devices/${enc(props.id)}/telemetry?slots=60`));
  // Telemetry keeps arriving: reload the charts every 15 s while the page is open.
  useEffect(() => {
    const t = setInterval(() => tele.reload(), 15_000);
    return () => clearInterval(t);
  }, [tele.reload]);
  const live = s.devices.get(props.id);
  // A live change of state (an update step) also changes the history: reload it.
  const liveKey = live ? `${live.update?.state ?? ''}:${live.firmwareVersion ?? ''}` : '';
  useEffect(() => {
    if (liveKey) detail.reload();
  }, [liveKey]);
  if (!detail.data) return detail.error !== undefined ? <ErrorBox error={detail.error} /> : <Loading />;
  const d = { ...detail.data, ...(live ?? {}) };

  return (
    <div class="page">
      <nav class="crumbs">
        <a href={href.devices}>Devices</a> / <span class="mono">{d.deviceId}</span>
      </nav>
      <h1>
        <Online online={d.online} /> {d.deviceId} {d.ghost ? <Badge tone="warn">ghost</Badge> : null}
      </h1>
      <div class="facts">
        <div><span>model</span><b>{d.hardwareModel ?? '–'}</b></div>
        <div><span>firmware</span><b>{d.firmwareVersion ?? '–'}</b> <small class="muted">slot {d.activeSlot ?? '–'}</small></div>
        <div><span>update</span><StateBadge state={d.update?.state} /></div>
        <div><span>last seen</span><b>{ago(d.lastSeen)}</b></div>
        <div><span>agent</span><b>{d.agentVersion ?? '–'}</b></div>
        <div><span>security floor</span><b>{d.securityFloor}</b></div>
        <div><span>bucket</span><b>{d.bucket}</b></div>
        <div><span>tags</span><b>{d.tags.length ? d.tags.join(', ') : '–'}</b></div>
      </div>
      <Card title="Telemetry" class="telemetry">
        {tele.data ? <TelemetryCharts t={tele.data} /> : tele.error !== undefined ? <ErrorBox error={tele.error} /> : <Loading />}
      </Card>
      <div class="grid two">
        <Card title="Update history">
          {d.deployments.length === 0 ? (
            <Empty>Never in a deployment.</Empty>
          ) : (
            <table class="table responsive">
              <thead>
                <tr>
                  <th>Deployment</th>
                  <th>Wave</th>
                  <th>State</th>
                  <th>When</th>
                </tr>
              </thead>
              <tbody>
                {d.deployments.map((p) => (
                  <tr key={p.deploymentId}>
                    <td data-label="Deployment">
                      <a class="mono" href={href.deployment(p.deploymentId)}>{p.deploymentId}</a>
                    </td>
                    <td data-label="Wave">{p.wave + 1}</td>
                    <td data-label="State">
                      <StateBadge state={p.state} /> {p.reason ? <span class="small muted">{p.reason}</span> : null}
                      {p.rollback ? <span class="small muted"> rollback {p.rollback.status}</span> : null}
                    </td>
                    <td data-label="When">{dateTime(p.lastStatusAt ?? p.lastSeenAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Card>
        <Card title="Anomalies">
          {d.anomalies.length === 0 ? (
            <Empty>None recorded.</Empty>
          ) : (
            <ul class="anomalies">
              {d.anomalies.map((a) => (
                <li key={a.kind}>
                  <Badge tone="bad">{a.kind}</Badge> ×{a.count} · last {ago(a.lastAt)}
                  <div class="small muted">{a.detail}</div>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>
      <Card title="Last error log excerpt">
        {tele.data?.errorLog ? (
          <>
            <p class="small muted">
              {dateTime(tele.data.errorLog.at)} on {tele.data.errorLog.firmwareVersion} (as the device sent it)
            </p>
            <pre class="log">{tele.data.errorLog.lines.join('\n')}</pre>
          </>
        ) : (
          <Empty>No error lines received.</Empty>
        )}
      </Card>
    </div>
  );
}
