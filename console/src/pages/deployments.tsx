/** Every deployment, newest first, with its phase and progress. */
import { href } from '../router.js';
import { useStore } from '../store.js';
import { ago } from '../format.js';
import { StackedBar } from '../ui/bar.js';
import { Card, Empty, PhaseBadge, VerdictBadge, useTicker } from '../ui/common.js';
import { deploymentProgress } from './fleet.js';

export function DeploymentsPage() {
  const s = useStore();
  useTicker(10_000);
  const list = [...s.deployments.values()].sort((a, b) => b.createdAt - a.createdAt);
  return (
    <div class="page">
      <h1>Deployments</h1>
      <Card>
        {list.length === 0 ? (
          <Empty>No deployment yet. Create one with <code>fleet deploy create --firmware 1.2.0</code>.</Empty>
        ) : (
          <table class="table responsive">
            <thead>
              <tr>
                <th>Deployment</th>
                <th>Phase</th>
                <th>Wave</th>
                <th>Progress</th>
                <th>Last verdict</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.map((d) => {
                const p = deploymentProgress(d);
                const last = [...d.waves].reverse().find((w) => w.verdict);
                return (
                  <tr key={d.id} data-deployment={d.id}>
                    <td data-label="Deployment">
                      <a href={href.deployment(d.id)}>
                        <b>{d.firmwareVersion}</b> <span class="mono muted">{d.id}</span>
                      </a>
                      <div class="muted small">{d.target.hardwareModels.join(', ')}</div>
                    </td>
                    <td data-label="Phase">
                      <PhaseBadge phase={d.phase} paused={d.paused} />
                    </td>
                    <td data-label="Wave">
                      {d.current + 1} of {d.waves.length} · {d.waves[d.current]?.percent ?? 0} %
                    </td>
                    <td data-label="Progress" class="progress-cell">
                      <StackedBar compact total={p.tracked} label="committed" segments={[{ label: 'committed', value: p.committed, tone: 'good' }]} />
                      <span class="small muted">
                        {p.committed}/{p.tracked}
                      </span>
                    </td>
                    <td data-label="Last verdict">
                      <VerdictBadge verdict={last?.verdict} />
                    </td>
                    <td data-label="Updated">{ago(d.updatedAt)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
