/** The device registry: filter by model, version and presence; live state over what was loaded. */
import { useState } from 'preact/hooks';
import { call } from '../api.js';
import { href } from '../router.js';
import { useStore } from '../store.js';
import { ago } from '../format.js';
import type { DeviceView } from '../types.js';
import { Card, Empty, ErrorBox, Loading, Online, StateBadge, useFetch, useTicker } from '../ui/common.js';

const PAGE = 100;

function initialModel(): string {
  const q = location.hash.split('?')[1];
  return q ? (new URLSearchParams(q).get('model') ?? '') : '';
}

export function DevicesPage() {
  const s = useStore();
  useTicker(10_000);
  const [model, setModel] = useState(initialModel);
  const [version, setVersion] = useState('');
  const [online, setOnline] = useState('');
  const [offset, setOffset] = useState(0);
  const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
  if (model) q.set('model', model);
  if (version) q.set('version', version);
  if (online) q.set('online', online);
  const query = q.toString();
  const list = useFetch(query, () => call<{ total: number; online: number; devices: DeviceView[] }>('GET', `/v1/devices?${query}`));
  const models = s.summary?.models.map((m) => m.hardwareModel).filter((m): m is string => m !== null) ?? [];
  const versions = s.summary?.versions.map((v) => v.version).filter((v): v is string => v !== null) ?? [];
  const filter = (set: (v: string) => void) => (e: Event) => {
    set((e.target as HTMLSelectElement).value);
    setOffset(0);
  };

  return (
    <div class="page">
      <h1>Devices</h1>
      <div class="filters">
        <label>
          Model
          <select value={model} onChange={filter(setModel)}>
            <option value="">all</option>
            {models.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label>
          Version
          <select value={version} onChange={filter(setVersion)}>
            <option value="">all</option>
            {versions.map((v) => (
              <option key={v} value={v}>
                {v}
              </option>
            ))}
          </select>
        </label>
        <label>
          Presence
          <select value={online} onChange={filter(setOnline)}>
            <option value="">all</option>
            <option value="true">online</option>
            <option value="false">offline</option>
          </select>
        </label>
      </div>
      <Card>
        {list.error !== undefined ? (
          <ErrorBox error={list.error} />
        ) : !list.data ? (
          <Loading />
        ) : list.data.devices.length === 0 ? (
          <Empty>No device matches.</Empty>
        ) : (
          <>
            <p class="small muted">
              {list.data.total} devices, {list.data.online} online
            </p>
            <table class="table responsive">
              <thead>
                <tr>
                  <th>Device</th>
                  <th>Model</th>
                  <th>Version</th>
                  <th>Update</th>
                  <th>Last seen</th>
                </tr>
              </thead>
              <tbody>
                {list.data.devices.map((fetched) => {
                  const d = s.devices.get(fetched.deviceId) ?? fetched;
                  return (
                    <tr key={d.deviceId} data-device={d.deviceId}>
                      <td data-label="Device">
                        <Online online={d.online} /> <a href={href.device(d.deviceId)}>{d.deviceId}</a>
                        {d.ghost ? <span class="warn-text small"> ghost</span> : null}
                      </td>
                      <td data-label="Model">{d.hardwareModel ?? '–'}</td>
                      <td data-label="Version">
                        {d.firmwareVersion ?? '–'} <span class="muted small">{d.activeSlot ?? ''}</span>
                      </td>
                      <td data-label="Update">
                        <StateBadge state={d.update?.state} /> {d.update ? <a class="small mono" href={href.deployment(d.update.deploymentId)}>{d.update.deploymentId}</a> : null}
                      </td>
                      <td data-label="Last seen">{ago(d.lastSeen)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            <div class="pager">
              <button class="btn small" type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
                ← Previous
              </button>
              <span class="small muted">
                {offset + 1}–{Math.min(offset + PAGE, list.data.total)} of {list.data.total}
              </span>
              <button class="btn small" type="button" disabled={offset + PAGE >= list.data.total} onClick={() => setOffset(offset + PAGE)}>
                Next →
              </button>
            </div>
          </>
        )}
      </Card>
    </div>
  );
}
