/** Feature flags: view them all; an admin changes them (the kill switch one click away), audited. */
import { useEffect, useState } from 'preact/hooks';
import { call, enc } from '../api.js';
import { isAdmin, useStore } from '../store.js';
import { ago } from '../format.js';
import type { Flag } from '../types.js';
import { Badge, Card, ErrorBox, Loading, useFetch } from '../ui/common.js';
import { ConfirmDialog, type PendingAction } from '../ui/confirm.js';

export function FlagsPage() {
  const s = useStore();
  const flags = useFetch('flags', () => call<{ version: number; flags: Flag[] }>('GET', '/v1/flags'));
  const [pending, setPending] = useState<PendingAction | null>(null);
  const [rollouts, setRollouts] = useState<Record<string, string>>({});
  // Someone changed a flag (here or in the CLI): the audit feed says so; reload.
  const lastFlagAudit = s.audit.find((a) => a.action.startsWith('flag'))?.id;
  useEffect(() => {
    if (lastFlagAudit !== undefined) flags.reload();
  }, [lastFlagAudit]);
  const admin = isAdmin();

  const kill = (f: Flag): void =>
    setPending({
      title: `Kill ${f.name}?`,
      body: <p>Turns {f.name} off for everyone from the next evaluation{f.scope === 'device' ? ' (devices get the retained flags message)' : ''}.</p>,
      confirm: 'Kill',
      danger: true,
      run: (reason) => call('POST', `/v1/flags/${enc(f.name)}/kill`, { reason }).then(() => flags.reload()),
    });
  const enable = (f: Flag): void =>
    setPending({
      title: `Turn ${f.name} on?`,
      body: <p>Turns {f.name} on for {f.rollout} % of keys.</p>,
      confirm: 'Turn on',
      run: (reason) => call('PUT', `/v1/flags/${enc(f.name)}`, { enabled: true, reason }).then(() => flags.reload()),
    });
  const setRollout = (f: Flag, value: number): void =>
    setPending({
      title: `Roll ${f.name} out to ${value} %?`,
      body: <p>Keys in the first {value} of 100 buckets see it on.</p>,
      confirm: 'Set',
      run: (reason) => call('PUT', `/v1/flags/${enc(f.name)}`, { rollout: value, reason }).then(() => flags.reload()),
    });

  return (
    <div class="page">
      <h1>Feature flags</h1>
      {!admin ? <p class="muted">Changing flags needs the admin role; you can view them.</p> : null}
      <Card>
        {flags.error !== undefined ? (
          <ErrorBox error={flags.error} />
        ) : !flags.data ? (
          <Loading />
        ) : (
          <table class="table responsive flags">
            <thead>
              <tr>
                <th>Flag</th>
                <th>State</th>
                <th>Rollout</th>
                <th>Variants</th>
                <th>Changed</th>
                {admin ? <th /> : null}
              </tr>
            </thead>
            <tbody>
              {flags.data.flags.map((f) => (
                <tr key={f.name} data-flag={f.name}>
                  <td data-label="Flag">
                    <b class="mono">{f.name}</b> <span class="muted small">{f.scope}</span>
                    <div class="small muted">{f.description}</div>
                  </td>
                  <td data-label="State">
                    <Badge tone={f.enabled ? 'good' : 'muted'}>{f.enabled ? 'on' : 'off'}</Badge>
                  </td>
                  <td data-label="Rollout">
                    {admin ? (
                      <form
                        class="inline"
                        onSubmit={(e) => {
                          e.preventDefault();
                          const v = Number(rollouts[f.name] ?? f.rollout);
                          if (v >= 0 && v <= 100) setRollout(f, v);
                        }}
                      >
                        <input
                          type="number"
                          min={0}
                          max={100}
                          step={1}
                          aria-label={`${f.name} rollout %`}
                          value={rollouts[f.name] ?? String(f.rollout)}
                          onInput={(e) => setRollouts({ ...rollouts, [f.name]: (e.target as HTMLInputElement).value })}
                        />
                        {rollouts[f.name] !== undefined && Number(rollouts[f.name]) !== f.rollout ? <button class="btn small">Set</button> : <span> %</span>}
                      </form>
                    ) : (
                      `${f.rollout} %`
                    )}
                  </td>
                  <td data-label="Variants" class="small">
                    {f.variants.length ? f.variants.map((v) => `${v.name}:${v.weight}`).join(', ') : '–'}
                  </td>
                  <td data-label="Changed" class="small">
                    {f.stored ? `${ago(f.updatedAt)} by ${f.updatedBy}` : 'default'}
                  </td>
                  {admin ? (
                    <td>
                      {f.enabled ? (
                        <button type="button" class="btn danger small" data-action="kill" onClick={() => kill(f)}>
                          Kill
                        </button>
                      ) : (
                        <button type="button" class="btn small" data-action="enable" onClick={() => enable(f)}>
                          Turn on
                        </button>
                      )}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <ConfirmDialog action={pending} onClose={() => setPending(null)} />
    </div>
  );
}
