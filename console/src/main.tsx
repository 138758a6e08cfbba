/**
 * The operator console: a session first (log in, or the token in `#token=…` that `fleet demo` prints),
 * then the live feed and the pages, in one layout that works on a laptop and on a phone.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { currentSession, login, logout, setUnauthorizedHandler } from './api.js';
import { connect, disconnect } from './live.js';
import { href, navigate, useRoute, type Route } from './router.js';
import { changed, state, useStore } from './store.js';
import type { Session } from './types.js';
import { ErrorBox, Loading } from './ui/common.js';
import { LoginPage } from './pages/login.js';
import { FleetPage } from './pages/fleet.js';
import { DeploymentsPage } from './pages/deployments.js';
import { DeploymentPage } from './pages/deployment.js';
import { DecisionPage } from './pages/decision.js';
import { DevicesPage } from './pages/devices.js';
import { DevicePage } from './pages/device.js';
import { FlagsPage } from './pages/flags.js';
import { AuditPage } from './pages/audit.js';
import './styles.css';

/** A token handed over in the fragment (never sent to the server in a URL), removed at once. */
function takeFragmentToken(): string | undefined {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return undefined;
  history.replaceState(null, '', `${location.pathname}#/`);
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
}

const NAV: { label: string; to: string; pages: Route['page'][] }[] = [
  { label: 'Fleet', to: href.fleet, pages: ['fleet'] },
  { label: 'Deployments', to: href.deployments, pages: ['deployments', 'deployment', 'decision'] },
  { label: 'Devices', to: href.devices, pages: ['devices', 'device'] },
  { label: 'Flags', to: href.flags, pages: ['flags'] },
  { label: 'Audit', to: href.audit, pages: ['audit'] },
];

function Page(props: { route: Route }) {
  const r = props.route;
  switch (r.page) {
    case 'fleet':
      return <FleetPage />;
    case 'deployments':
      return <DeploymentsPage />;
    case 'deployment':
      return <DeploymentPage id={r.id} />;
    case 'decision':
      return <DecisionPage id={r.id} decisionId={r.decisionId} />;
    case 'devices':
      return <DevicesPage />;
    case 'device':
      return <DevicePage id={r.id} />;
    case 'flags':
      return <FlagsPage />;
    case 'audit':
      return <AuditPage />;
    case 'login':
      return <FleetPage />;
    case 'not-found':
      return <ErrorBox error={`No page at ${r.path}.`} />;
  }
}

function Shell(props: { route: Route; session: Session; onLogout: () => void }) {
  const s = useStore();
  const liveLabel = { live: 'live', connecting: 'connecting', reconnecting: 'reconnecting', off: 'offline' }[s.live];
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href={href.fleet}>
          <span class="logo" aria-hidden="true" />
          fleet
        </a>
        <nav class="nav" aria-label="Pages">
          {NAV.map((n) => (
            <a key={n.to} href={n.to} class={n.pages.includes(props.route.page) ? 'active' : ''} aria-current={n.pages.includes(props.route.page) ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <div class="who">
          <span class={`live ${s.live}`} title={`live updates: ${liveLabel}`} data-live={s.live}>
            <i />
            <span class="live-label">{liveLabel}</span>
          </span>
          <span class="user" data-role={props.session.user.role}>
            {props.session.user.name} <small>{props.session.user.role}</small>
          </span>
          <button class="btn ghost small" type="button" onClick={props.onLogout}>
            Log out
          </button>
        </div>
      </header>
      <main class="content">
        <Page route={props.route} />
      </main>
    </div>
  );
}

function App() {
  const route = useRoute();
  const s = useStore();
  const [checked, setChecked] = useState(false);
  const [loginError, setLoginError] = useState<unknown>(undefined);

  const start = (session: Session): void => {
    state.session = session;
    changed();
    connect();
    if (location.hash.startsWith('#/login')) navigate(href.fleet);
  };

  useEffect(() => {
    setUnauthorizedHandler(() => {
      if (!state.session) return;
      state.session = null;
      disconnect();
      changed();
    });
    const token = takeFragmentToken();
    (token ? login({ token }) : currentSession()).then(
      (session) => {
        if (session) start(session);
        setChecked(true);
      },
      (err: unknown) => {
        setLoginError(err);
        setChecked(true);
      },
    );
  }, []);

  if (!checked) return <Loading />;
  if (!s.session) return <LoginPage onLogin={start} initialError={loginError} />;
  const onLogout = (): void => {
    disconnect();
    void logout().finally(() => {
      state.session = null;
      changed();
    });
  };
  return <Shell route={route} session={s.session} onLogout={onLogout} />;
}

render(<App />, document.getElementById('app')!);
