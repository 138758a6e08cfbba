/** Hash routes (`#/deployments/d-1`): the server serves one page, and a reload keeps the place. */
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'fleet' }
  | { page: 'deployments' }
  | { page: 'deployment'; id: string }
  | { page: 'decision'; id: string; decisionId: string }
  | { page: 'devices' }
  | { page: 'device'; id: string }
  | { page: 'flags' }
  | { page: 'audit' }
  | { page: 'login' }
  | { page: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').split('?')[0] ?? '';
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const [a, b, c, d] = parts;
  if (parts.length === 0) return { page: 'fleet' };
  if (a === 'deployments' && parts.length === 1) return { page: 'deployments' };
  if (a === 'deployments' && b && parts.length === 2) return { page: 'deployment', id: b };
  if (a === 'deployments' && b && c === 'decisions' && d && parts.length === 4) return { page: 'decision', id: b, decisionId: d };
  if (a === 'devices' && parts.length === 1) return { page: 'devices' };
  if (a === 'devices' && b && parts.length === 2) return { page: 'device', id: b };
  if (a === 'flags' && parts.length === 1) return { page: 'flags' };
  if (a === 'audit' && parts.length === 1) return { page: 'audit' };
  if (a === 'login') return { page: 'login' };
  return { page: 'not-found', path };
}

export const href = {
  fleet: '#/',
  deployments: '#/deployments',
  deployment: (id: string) => `#/deployments/${encodeURIComponent(id)}`,
  decision: (id: string, decisionId: string) => `#/deployments/${encodeURIComponent(id)}/decisions/${encodeURIComponent(decisionId)}`,
  devices: '#/devices',
  device: (id: string) => `#/devices/${encodeURIComponent(id)}`,
  flags: '#/flags',
  audit: '#/audit',
  login: '#/login',
};

export function navigate(to: string): void {
  if (location.hash !== to) location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = (): void => {
      setRoute(parseRoute(location.hash));
      window.scrollTo(0, 0);
    };
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
