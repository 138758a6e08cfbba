/** Small building blocks shared by the pages: cards, badges, loading and error states, data fetching. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../api.js';

export function Card(props: { title?: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; class?: string; id?: string }) {
  return (
    <section class={`card ${props.class ?? ''}`} {...(props.id ? { id: props.id } : {})}>
      {props.title !== undefined || props.actions !== undefined ? (
        <header class="card-head">
          <h2>{props.title}</h2>
          {props.actions !== undefined ? <div class="card-actions">{props.actions}</div> : null}
        </header>
      ) : null}
      {props.children}
    </section>
  );
}

export function Kpi(props: { label: string; value: ComponentChildren; tone?: 'good' | 'bad' | 'warn' | 'muted'; hint?: string }) {
  return (
    <div class={`kpi ${props.tone ?? ''}`}>
      <div class="kpi-value">{props.value}</div>
      <div class="kpi-label">{props.label}</div>
      {props.hint ? <div class="kpi-hint">{props.hint}</div> : null}
    </div>
  );
}

export type Tone = 'good' | 'bad' | 'warn' | 'info' | 'muted' | 'busy';

export function Badge(props: { tone: Tone; children: ComponentChildren; title?: string }) {
  return (
    <span class={`badge ${props.tone}`} {...(props.title ? { title: props.title } : {})}>
      {props.children}
    </span>
  );
}

const PHASE_TONES: Record<string, Tone> = {
  draft: 'muted',
  scheduled: 'muted',
  pending: 'warn',
  rolling: 'busy',
  soaking: 'info',
  gating: 'info',
  completed: 'good',
  aborted: 'bad',
  'rolling-back': 'bad',
  'rolled-back': 'bad',
};

export function PhaseBadge(props: { phase: string; paused?: boolean }) {
  return (
    <Badge tone={props.paused ? 'warn' : (PHASE_TONES[props.phase] ?? 'muted')}>
      {props.paused ? `${props.phase} · paused` : props.phase}
    </Badge>
  );
}

export function VerdictBadge(props: { verdict: string | undefined }) {
  const v = props.verdict;
  if (!v) return <span class="muted">–</span>;
  return <Badge tone={v === 'Proceed' ? 'good' : v === 'Monitor' ? 'warn' : 'bad'}>{v}</Badge>;
}

const STATE_TONES: Record<string, Tone> = {
  committed: 'good',
  'already-installed': 'good',
  idle: 'muted',
  none: 'muted',
  pending: 'muted',
  downloading: 'busy',
  verifying: 'busy',
  installing: 'busy',
  rebooting: 'busy',
  trial: 'info',
  'rolling-back': 'warn',
  'rolled-back': 'warn',
  failed: 'bad',
  rejected: 'bad',
};

export function StateBadge(props: { state: string | undefined | null }) {
  const s = props.state ?? 'none';
  return <Badge tone={STATE_TONES[s] ?? 'muted'}>{s}</Badge>;
}

export function Online(props: { online: boolean }) {
  return <span class={`dot ${props.online ? 'on' : 'off'}`} title={props.online ? 'online' : 'offline'} aria-label={props.online ? 'online' : 'offline'} />;
}

export function ErrorBox(props: { error: unknown }) {
  const e = props.error;
  const text = e instanceof ApiError ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e);
  return (
    <div class="error-box" role="alert">
      {text}
    </div>
  );
}

export function Loading() {
  return <div class="loading" aria-busy="true">Loading…</div>;
}

export function Empty(props: { children: ComponentChildren }) {
  return <div class="empty">{props.children}</div>;
}

export interface Fetched<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Fetches on mount and when `key` changes; `reload` fetches again, keeping the old data meanwhile. */
export function useFetch<T>(key: string | null, load: () => Promise<T>): Fetched<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const loadRef = useRef(load);
  loadRef.current = load;
  const seq = useRef(0);
  const run = useCallback(() => {
    if (key === null) return;
    const mine = ++seq.current;
    setLoading(true);
    loadRef.current().then(
      (d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (mine !== seq.current) return;
        setError(err);
        setLoading(false);
      },
    );
  }, [key]);
  useEffect(() => {
    setData(undefined);
    run();
  }, [run]);
  return { data, error, loading, reload: run };
}

/** Re-renders every `ms` (countdowns, "ago"). */
export function useTicker(ms: number): void {
  const [, set] = useState(0);
  useEffect(() => {
    const t = setInterval(() => set((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
}
