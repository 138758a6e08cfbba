/**
 * What the pages share: the session, deployments and their decisions, the latest audit entries, the
 * fleet counts and the coordinator's clock, kept current by the live event stream (live.ts). A plain
 * object with a change counter; components re-render through `useStore` at most once per frame.
 */
import { useEffect, useState } from 'preact/hooks';
import type { AuditRecord, DecisionRecord, DeploymentView, DeviceView, FleetSummary, Session } from './types.js';

export interface ClockEstimate {
  /** Coordinator time at `local` (Date.now()) and how fast it runs against real time. */
  server: number;
  local: number;
  rate: number;
}

export interface State {
  session: Session | null;
  /** Live stream status. */
  live: 'connecting' | 'live' | 'reconnecting' | 'off';
  deployments: Map<string, DeploymentView>;
  decisions: Map<string, DecisionRecord[]>;
  audit: AuditRecord[];
  summary: FleetSummary | null;
  /** Devices changed since a page loaded them, by id (the pages merge these over what they fetched). */
  devices: Map<string, DeviceView>;
  clock: ClockEstimate;
}

export const state: State = {
  session: null,
  live: 'off',
  deployments: new Map(),
  decisions: new Map(),
  audit: [],
  summary: null,
  devices: new Map(),
  clock: { server: Date.now(), local: Date.now(), rate: 1 },
};

const MAX_AUDIT = 300;
const MAX_DEVICES = 5000;
const listeners = new Set<() => void>();
let scheduled = false;
let version = 0;

/** Something changed: listeners run once, on the next frame. */
export function changed(): void {
  version++;
  if (scheduled) return;
  scheduled = true;
  const run = (): void => {
    scheduled = false;
    for (const l of [...listeners]) l();
  };
  if (typeof requestAnimationFrame === 'function' && document.visibilityState === 'visible') requestAnimationFrame(run);
  else setTimeout(run, 50);
}

/** Re-renders the calling component when the store changes. */
export function useStore(): State {
  const [, setVersion] = useState(version);
  useEffect(() => {
    const l = (): void => setVersion(version);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return state;
}

export function putDeployment(view: DeploymentView): void {
  const prev = state.deployments.get(view.id);
  if (prev && prev.revision > view.revision) return;
  state.deployments.set(view.id, view);
  changed();
}

export function putDecision(d: DecisionRecord): void {
  const list = state.decisions.get(d.deploymentId) ?? [];
  if (!list.some((x) => x.id === d.id)) state.decisions.set(d.deploymentId, [...list, d].sort((a, b) => a.at - b.at));
  changed();
}

export function putAudit(entry: AuditRecord): void {
  if (state.audit.some((a) => a.id === entry.id)) return;
  state.audit = [entry, ...state.audit].sort((a, b) => b.id - a.id).slice(0, MAX_AUDIT);
  changed();
}

export function putDevice(d: DeviceView): void {
  state.devices.delete(d.deviceId);
  state.devices.set(d.deviceId, d);
  if (state.devices.size > MAX_DEVICES) state.devices.delete(state.devices.keys().next().value!);
  changed();
}

/** A new reading of the coordinator's clock; its rate is estimated from readings seconds apart. */
export function putClock(server: number, local = Date.now()): void {
  const c = state.clock;
  const dt = local - c.local;
  let rate = c.rate;
  if (dt >= 2000 && state.live === 'live') {
    const measured = (server - c.server) / dt;
    if (measured > 0 && Number.isFinite(measured)) rate = rate === 1 && Math.abs(measured - 1) > 0.2 ? measured : rate * 0.5 + measured * 0.5;
  }
  state.clock = { server, local, rate: Math.abs(rate - 1) < 0.05 ? 1 : rate };
  changed();
}

/** The coordinator's time now, estimated. */
export function serverNow(): number {
  const c = state.clock;
  return c.server + (Date.now() - c.local) * c.rate;
}

export function canOperate(): boolean {
  const role = state.session?.user.role;
  return role === 'operator' || role === 'admin';
}

export function isAdmin(): boolean {
  return state.session?.user.role === 'admin';
}
