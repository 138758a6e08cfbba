/**
 * One deployment: its waves with progress bars (targeted, installing, committed, failed, rolled back),
 * exposure, the soak timer, the rollback, every gate decision, and the operator's actions (with a
 * confirmation and a reason; a viewer sees none, and the server refuses them anyway).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, enc } from '../api.js';
import { href } from '../router.js';
import { canOperate, putDecision, putDeployment, serverNow, useStore } from '../store.js';
import { ago, clockTime, dateTime, duration, who } from '../format.js';
import type { DecisionRecord, DeploymentView, DeviceProgress, WaveView } from '../types.js';
import { StackedBar } from '../ui/bar.js';
import { Badge, Card, Empty, ErrorBox, Loading, PhaseBadge, VerdictBadge, useFetch, useTicker } from '../ui/common.js';
import { ConfirmDialog, type PendingAction } from '../ui/confirm.js';

type ActionType = 'start' | 'pause' | 'resume' | 'promote' | 'approve' | 'abort' | 'rollback';

const RUNNING = new Set(['scheduled', 'pending', 'rolling', 'soaking', 'gating']);

/** The actions that make sense in this state (the server is the judge; these are the likely ones). */
export function availableActions(d: DeploymentView): ActionType[] {
  const out: ActionType[] = [];
  if (d.phase === 'draft') out.push('start');
  if (RUNNING.has(d.phase) && !d.paused) out.push('pause');
  if (d.paused) out.push('resume');
  if (d.waitingFor.includes('approval')) out.push('approve');
  if (['rolling', 'soaking', 'pending'].includes(d.phase) && !d.waitingFor.includes('approval')) out.push('promote');
  if (d.phase === 'draft' || RUNNING.has(d.phase)) out.push('abort');
  if (d.phase === 'completed' || d.phase === 'aborted' || (d.phase === 'rolled-back' && (d.rollback?.unreachable ?? 0) > 0)) out.push('rollback');
  return out;
}

const ACTION_TEXT: Record<ActionType, { label: string; body: (d: DeploymentView) => string; danger?: boolean }> = {
  start: { label: 'Start', body: () => 'Starts the first wave: its devices get the signed manifest.' },
  pause: { label: 'Pause', body: () => 'Freezes the timers: no new wave starts. Published manifests stay; abort to stop exposure.' },
  resume: { label: 'Resume', body: () => 'Lets the rollout go on from where it was paused.' },
  promote: { label: 'Promote', body: (d) => `Skips what wave ${d.current + 1} waits for (stragglers, the rest of the soak, a window, a Monitor hold).` },
  approve: { label: 'Approve', body: (d) => `Approves the next wave that needs approval (wave ${d.current + 1}, ${d.waves[d.current]?.percent ?? '?'} %).` },
  abort: { label: 'Abort', body: () => 'Stops the rollout. Every exposed device gets a signed rollback command and is tracked until it is back on its old version.', danger: true },
  rollback: { label: 'Roll back', body: () => 'Sends every exposed device a signed rollback command to its previous version.', danger: true },
};

function WaveRow(props: { d: DeploymentView; w: WaveView; rolledBack: number | undefined }) {
  useTicker(1000);
  const { d, w } = props;
  const c = w.counts;
  const tracked = c.tracked ?? 0;
  const back = props.rolledBack ?? 0;
  const now = serverNow();
  const decision = w.decisionId;
  let timer: string | null = null;
  if (w.status === 'soaking' && w.soakEndsAt !== undefined) {
    timer = `soak ends in ${duration(w.soakEndsAt - now)} (${clockTime(w.soakEndsAt)})`;
  } else if (w.status === 'rolling' && w.deadlineAt !== undefined) {
    timer = `deadline in ${duration(w.deadlineAt - now)}`;
  }
  const soakDone = w.status === 'soaking' && w.soakEndsAt !== undefined && w.soakMs > 0 ? Math.min(1, Math.max(0, 1 - (w.soakEndsAt - now) / w.soakMs)) : null;
  return (
    <div class={`wave ${w.index === d.current ? 'current' : ''}`} data-wave={w.index + 1} data-status={w.status}>
      <div class="wave-head">
        <b>Wave {w.index + 1}</b>
        <span class="muted">{w.percent} %</span>
        <Badge tone={w.status === 'passed' ? 'good' : w.status === 'aborted' ? 'bad' : w.status === 'pending' || w.status === 'skipped' ? 'muted' : 'busy'}>{w.status}</Badge>
        {w.requiresApproval ? <Badge tone={w.approved ? 'good' : 'warn'}>{w.approved ? 'approved' : 'needs approval'}</Badge> : null}
        {w.verdict ? <VerdictBadge verdict={w.verdict} /> : null}
        {w.monitorCount > 0 ? <span class="muted small">monitor ×{w.monitorCount}</span> : null}
        {decision ? (
          <a class="small" href={href.decision(d.id, decision)}>
            decision →
          </a>
        ) : null}
      </div>
      <StackedBar
        total={tracked}
        label={`wave ${w.index + 1}`}
        segments={[
          { label: 'committed', value: Math.max(0, (c.committed ?? 0) - back), tone: 'good' },
          { label: 'installing', value: c.inProgress ?? 0, tone: 'busy' },
          { label: 'failed', value: (c.failed ?? 0) + (c.timedOut ?? 0), tone: 'bad' },
          { label: 'rolled back', value: back, tone: 'back' },
          { label: 'waiting', value: (c.waiting ?? 0) + (c.offline ?? 0), tone: 'muted' },
        ]}
      />
      <div class="wave-foot small muted">
        <span>
          targeted <b>{tracked}</b>
        </span>
        {c.reporting !== undefined ? <span>reporting {c.reporting}</span> : null}
        {c.trialFailures ? <span class="bad-text">trial failures {c.trialFailures}</span> : null}
        {c.ineligible ? <span>ineligible {c.ineligible}</span> : null}
        {w.startedAt !== undefined ? <span>started {clockTime(w.startedAt)}</span> : null}
        {timer ? <span class="timer">{timer}</span> : null}
      </div>
      {soakDone !== null ? (
        <div class="soak" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(soakDone * 100)} aria-label="soak">
          <span style={{ width: `${soakDone * 100}%` }} />
        </div>
      ) : null}
    </div>
  );
}

/** Per wave, devices whose rollback was confirmed (from the device list, reloaded as the rollback moves). */
function useRolledBack(d: DeploymentView | undefined): Map<number, number> | undefined {
  const [counts, setCounts] = useState<Map<number, number> | undefined>(undefined);
  const last = useRef(0);
  const rev = d?.rollback ? `${d.id}:${d.rollback.confirmed}:${d.rollback.unreachable}` : null;
  useEffect(() => {
    if (!rev || !d) return undefined;
    const wait = Math.max(0, 1500 - (Date.now() - last.current));
    const t = setTimeout(() => {
      last.current = Date.now();
      call<{ devices: DeviceProgress[] }>('GET', `/v1/deployments/${enc(d.id)}/devices`).then((r) => {
        const m = new Map<number, number>();
        for (const p of r.devices) if (p.rollback?.status === 'confirmed') m.set(p.wave, (m.get(p.wave) ?? 0) + 1);
        setCounts(m);
      }, () => undefined);
    }, wait);
    return () => clearTimeout(t);
  }, [rev]);
  return counts;
}

export function DecisionTable(props: { deploymentId: string; decisions: DecisionRecord[] }) {
  if (props.decisions.length === 0) return <Empty>No decision yet: the first comes when a wave's soak ends.</Empty>;
  return (
    <table class="table responsive decisions">
      <thead>
        <tr>
          <th>When</th>
          <th>Wave</th>
          <th>Source</th>
          <th>Verdict</th>
          <th>Rule</th>
        </tr>
      </thead>
      <tbody>
        {[...props.decisions].reverse().map((x) => (
          <tr key={x.id} data-decision={x.id}>
            <td data-label="When">
              <a href={href.decision(props.deploymentId, x.id)}>{clockTime(x.at)}</a>
            </td>
            <td data-label="Wave">{x.wave + 1}</td>
            <td data-label="Source">{x.source}</td>
            <td data-label="Verdict">
              <VerdictBadge verdict={x.final.recommendation} />
            </td>
            <td data-label="Rule" class="rule">
              <a href={href.decision(props.deploymentId, x.id)}>{x.final.rule}</a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function DeploymentPage(props: { id: string }) {
  const s = useStore();
  const [pending, setPending] = useState<PendingAction | null>(null);
  const loaded = useFetch(`deployment:${props.id}`, async () => {
    const view = await call<DeploymentView & { decisions?: DecisionRecord[] }>('GET', `/v1/deployments/${enc(props.id)}`);
    const { decisions, ...rest } = view;
    putDeployment(rest);
    for (const x of decisions ?? []) putDecision(x);
    return true;
  });
  const d = s.deployments.get(props.id);
  const rolledBack = useRolledBack(d);
  if (!d) return loaded.error !== undefined ? <ErrorBox error={loaded.error} /> : <Loading />;
  const decisions = s.decisions.get(d.id) ?? [];
  const actions = canOperate() ? availableActions(d) : [];
  const exposed = d.rollback?.exposed ?? d.waves.reduce((n, w) => n + (w.counts.committed ?? 0) + (w.counts.inProgress ?? 0) + (w.counts.trialFailures ?? 0), 0);
  const ask = (type: ActionType): void => {
    const text = ACTION_TEXT[type];
    setPending({
      title: `${text.label} ${d.firmwareVersion} (${d.id})?`,
      body: <p>{text.body(d)}</p>,
      confirm: text.label,
      ...(text.danger ? { danger: true } : {}),
      run: async (reason) => {
        const body = type === 'abort' ? { type, reason, rollback: true } : { type, reason };
        const view = await call<DeploymentView & { decisions?: DecisionRecord[] }>('POST', `/v1/deployments/${enc(d.id)}/actions`, body);
        const { decisions: ds, ...rest } = view;
        putDeployment(rest);
        for (const x of ds ?? []) putDecision(x);
      },
    });
  };

  return (
    <div class="page">
      <nav class="crumbs">
        <a href={href.deployments}>Deployments</a> / <span class="mono">{d.id}</span>
      </nav>
      <div class="title-row">
        <h1>
          {d.firmwareVersion} <PhaseBadge phase={d.phase} paused={d.paused} />
        </h1>
        {actions.length ? (
          <div class="actions" role="toolbar" aria-label="Deployment actions">
            {actions.map((a) => (
              <button key={a} type="button" class={`btn ${ACTION_TEXT[a].danger ? 'danger' : a === 'approve' || a === 'resume' || a === 'start' ? 'primary' : ''}`} data-action={a} onClick={() => ask(a)}>
                {ACTION_TEXT[a].label}
              </button>
            ))}
          </div>
        ) : null}
      </div>
      <p class="muted">
        {d.description ? <>{d.description} · </> : null}
        {d.target.hardwareModels.join(', ')}
        {d.target.versionRange && d.target.versionRange !== '*' ? ` from ${d.target.versionRange}` : ''} · created {dateTime(d.createdAt)}
        {d.createdBy ? ` by ${who(d.createdBy)}` : ''} · updated {ago(d.updatedAt)}
      </p>
      {d.waitingFor.length ? <p class="notice">Waiting for {d.waitingFor.join(' and ')}.</p> : null}
      {d.pause ? (
        <p class="notice">
          Paused by {who(d.pause.by)} ({d.pause.cause}) {d.pause.reason ? `: “${d.pause.reason}”` : ''}
        </p>
      ) : null}
      {d.abortReason ? <p class="notice bad">Aborted: {d.abortReason}</p> : null}
      <div class="kpis">
        <div class="kpi">
          <div class="kpi-value">{exposed}</div>
          <div class="kpi-label">exposed</div>
        </div>
        <div class="kpi">
          <div class="kpi-value">
            {d.current + 1}/{d.waves.length}
          </div>
          <div class="kpi-label">wave</div>
        </div>
        <div class="kpi">
          <div class="kpi-value">{decisions.length}</div>
          <div class="kpi-label">decisions</div>
        </div>
      </div>
      {d.rollback ? (
        <Card title="Rollback" class="rollback">
          <StackedBar
            total={d.rollback.exposed}
            label="rollback"
            segments={[
              { label: 'back on the old version', value: d.rollback.confirmed, tone: 'back' },
              { label: 'unreachable', value: d.rollback.unreachable, tone: 'bad' },
              { label: 'refused (floor)', value: d.rollback.refused ?? 0, tone: 'warn' },
              { label: 'waiting', value: Math.max(0, d.rollback.exposed - d.rollback.confirmed - d.rollback.unreachable - (d.rollback.refused ?? 0)), tone: 'muted' },
            ]}
          />
          <p class="small muted">
            Started {clockTime(d.rollback.startedAt)} by {who(d.rollback.by)}: “{d.rollback.reason}”
            {d.rollback.completedAt !== undefined ? ` · done ${clockTime(d.rollback.completedAt)}` : ''}
          </p>
        </Card>
      ) : null}
      <Card title="Waves">
        <div class="waves">
          {d.waves.map((w) => (
            <WaveRow key={w.index} d={d} w={w} rolledBack={rolledBack?.get(w.index)} />
          ))}
        </div>
      </Card>
      <Card title="Gate decisions">
        <DecisionTable deploymentId={d.id} decisions={decisions} />
      </Card>
      <ConfirmDialog action={pending} onClose={() => setPending(null)} />
    </div>
  );
}
