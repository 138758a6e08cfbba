/**
 * The live feed: one EventSource on `GET /v1/events` (the session cookie authenticates it). Each
 * (re)connect reloads the lists the store holds, since events missed while disconnected are not
 * replayed; EventSource reconnects by itself after a network error.
 */
import { call, currentSession } from './api.js';
import { changed, putAudit, putClock, putDecision, putDeployment, putDevice, state } from './store.js';
import type { AuditRecord, DecisionRecord, DeploymentView, DeviceView, FleetSummary } from './types.js';

let source: EventSource | undefined;
let summaryTimer: ReturnType<typeof setTimeout> | undefined;
let lastSummary = 0;

/** Reloads the fleet counts, at most every 2 s (device events arrive in bursts during a wave). */
export function refreshSummary(): void {
  if (summaryTimer) return;
  const wait = Math.max(0, 2000 - (Date.now() - lastSummary));
  summaryTimer = setTimeout(() => {
    summaryTimer = undefined;
    lastSummary = Date.now();
    call<FleetSummary>('GET', '/v1/fleet/summary').then((s) => {
      state.summary = s;
      changed();
    }, () => undefined);
  }, wait);
}

export async function reload(): Promise<void> {
  const [deployments, audit] = await Promise.all([
    call<{ deployments: DeploymentView[] }>('GET', '/v1/deployments?limit=200'),
    call<{ entries: AuditRecord[] }>('GET', '/v1/audit?limit=100'),
  ]);
  state.deployments = new Map(deployments.deployments.map((d) => [d.id, d]));
  state.audit = audit.entries;
  changed();
  refreshSummary();
}

export function connect(): void {
  disconnect();
  state.live = 'connecting';
  changed();
  const es = new EventSource('/v1/events', { withCredentials: true });
  source = es;
  const on = <T>(type: string, fn: (data: T) => void): void => {
    es.addEventListener(type, (e) => {
      try {
        fn(JSON.parse((e as MessageEvent<string>).data) as T);
      } catch {
        // A malformed event is dropped; the next reload shows the truth.
      }
    });
  };
  es.addEventListener('open', () => {
    state.live = 'live';
    changed();
    reload().catch(() => undefined);
  });
  es.addEventListener('error', () => {
    state.live = es.readyState === EventSource.CLOSED ? 'off' : 'reconnecting';
    changed();
    // EventSource gives up on an answer that is not a stream (401: the session ended; 503: busy).
    if (es.readyState === EventSource.CLOSED && source === es) {
      currentSession().then(
        (session) => {
          if (source !== es) return;
          if (!session) {
            state.session = null;
            disconnect();
            changed();
          } else setTimeout(() => source === es && connect(), 10_000);
        },
        () => setTimeout(() => source === es && connect(), 10_000),
      );
    }
  });
  on<DeploymentView>('deployment', putDeployment);
  on<DecisionRecord>('decision', putDecision);
  on<AuditRecord>('audit', putAudit);
  on<DeviceView>('device', (d) => {
    putDevice(d);
    refreshSummary();
  });
  on<{ now: number }>('clock', (c) => putClock(c.now));
}

export function disconnect(): void {
  source?.close();
  source = undefined;
  state.live = 'off';
}
