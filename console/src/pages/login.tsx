/** Logging in: a name and password, or an API token (the development token is the first admin). */
import { useState } from 'preact/hooks';
import { login } from '../api.js';
import type { Session } from '../types.js';
import { ErrorBox } from '../ui/common.js';

export function LoginPage(props: { onLogin: (s: Session) => void; initialError?: unknown }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(props.initialError);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      props.onLogin(await login(mode === 'token' ? { token: token.trim() } : { username: username.trim(), password }));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="card login-card" onSubmit={(e) => void submit(e)}>
        <div class="brand big">
          <span class="logo" aria-hidden="true" />
          fleet
        </div>
        <p class="muted">Operator console. Log in to watch rollouts and act on them.</p>
        {mode === 'password' ? (
          <>
            <label class="field">
              <span>User name</span>
              <input name="username" autocomplete="username" required value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
            </label>
            <label class="field">
              <span>Password</span>
              <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
            </label>
          </>
        ) : (
          <label class="field">
            <span>API token</span>
            <input name="token" type="password" autocomplete="off" required value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
          </label>
        )}
        {error !== undefined ? <ErrorBox error={error} /> : null}
        <button class="btn primary wide" type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
        <button class="link" type="button" onClick={() => setMode(mode === 'password' ? 'token' : 'password')}>
          {mode === 'password' ? 'Use an API token instead' : 'Use a name and password instead'}
        </button>
      </form>
    </main>
  );
}
