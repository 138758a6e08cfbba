/**
 * Who is downloading: each device authenticates its downloads with its own broker credentials over
 * HTTP Basic (user = device id, password = its secret), answered from the credential store's cache of
 * verified secrets, so a download costs no store read once the device has connected. Refused secrets
 * are remembered for a minute, and at most `maxPendingChecks` uncached checks run at once (the rest
 * are told to come back), so a client guessing secrets cannot tie up the store, nor the thread pool
 * that also reads images with the scrypt checks of secrets stored before the fast form. With anonymous
 * devices allowed (development), a request without credentials is served as anonymous. I/O shell
 * around an injected verifier.
 */
import { createHash } from 'node:crypto';
import { isValidId } from '@fleet/protocol/ids';

/** The challenge a 401 carries; agents answer it with the device's credentials. */
export const DOWNLOAD_AUTH_CHALLENGE = 'Basic realm="fleet-artifacts", charset="UTF-8"';

export type AuthOutcome =
  | { ok: true; deviceId: string | undefined }
  | { ok: false; status: 401; why: 'missing' | 'malformed' | 'refused'; deviceId?: string }
  | { ok: false; status: 503; why: 'busy'; deviceId?: string };

export interface DownloadAuthOptions {
  /** Serve requests without credentials (the broker accepts anonymous devices). */
  allowAnonymous: boolean;
  /**
   * The device's secret checked against its stored hash (CredentialStore.verify); `lane` is the
   * client's address, so that checks from one address wait their turn behind others'. A rejection
   * (the store is busy) is answered 503, never remembered as a refusal.
   */
  verify: (deviceId: string, secret: string, lane: string) => Promise<boolean>;
  /** Real time, for the refusal cache. */
  now: () => number;
  /** Uncached credential checks at once; more are answered 503. Default 16. */
  maxPendingChecks?: number;
}

const REFUSED_TTL_MS = 60_000;
const REFUSED_MAX = 10_000;

/** `Basic base64(user:password)` → its parts, or undefined when it is not that. */
export function parseBasic(header: string): { user: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

export class DownloadAuth {
  private pending = 0;
  /** `deviceId:sha256(secret)` → until when a refusal is remembered. */
  private readonly refused = new Map<string, number>();

  constructor(private readonly options: DownloadAuthOptions) {}

  /** `from`: the client's address. */
  async authenticate(header: string | undefined, from: string): Promise<AuthOutcome> {
    if (header === undefined || header === '') {
      return this.options.allowAnonymous ? { ok: true, deviceId: undefined } : { ok: false, status: 401, why: 'missing' };
    }
    const basic = parseBasic(header);
    if (!basic || !isValidId(basic.user) || basic.password.length === 0 || basic.password.length > 1024) {
      return { ok: false, status: 401, why: 'malformed' };
    }
    const deviceId = basic.user;
    const key = `${deviceId}:${createHash('sha256').update(basic.password).digest('hex')}`;
    const until = this.refused.get(key);
    if (until !== undefined) {
      if (until > this.options.now()) return { ok: false, status: 401, why: 'refused', deviceId };
      this.refused.delete(key);
    }
    const limit = this.options.maxPendingChecks ?? 16;
    if (this.pending >= limit) return { ok: false, status: 503, why: 'busy', deviceId };
    this.pending++;
    let ok: boolean;
    try {
      ok = await this.options.verify(deviceId, basic.password, from);
    } catch {
      // The store was busy or failed, not the device: let it come back rather than remember a refusal.
      return { ok: false, status: 503, why: 'busy', deviceId };
    } finally {
      this.pending--;
    }
    if (ok) return { ok: true, deviceId };
    if (this.refused.size >= REFUSED_MAX) this.refused.clear();
    this.refused.set(key, this.options.now() + REFUSED_TTL_MS);
    return { ok: false, status: 401, why: 'refused', deviceId };
  }
}
