/**
 * Who a connecting client is. A device authenticates with user name = client id = device id and its
 * secret. Failed logins are throttled per client id and per source address (login-throttle.ts): a
 * throttled login is refused without a password check — unless it presents the secret that device
 * last proved — and its answer is held back up to a second, so a loop that waits for each answer runs
 * at our pace: a secret's check costs microseconds now (credentials.ts), so the throttle, not the hash,
 * is what holds back a wrong-secret loop. A scrypt check (a secret stored before the fast form) runs
 * through the credential store's fair, bounded queue, and is dropped if its sender gets throttled
 * while it waits. Devices without credentials are accepted only when
 * allowed, from a loopback address, never for an id that was ever provisioned, and are logged at every
 * connect. I/O shell (timers from the injected clock).
 */
import type { Logger } from 'pino';
import { systemClock, type Clock, type TimerHandle } from '@fleet/protocol/clock';
import { isValidId } from '@fleet/protocol/ids';
import { isLoopbackHost } from '../config.js';
import type { Counters } from '../metrics.js';
import type { CredentialStore } from './credentials.js';
import { BusyError } from './fair-queue.js';
import { LoginThrottle } from './login-throttle.js';

/** What the broker reports about a device for operators to see (the registry's anomaly log). */
export type BrokerAnomalyKind = 'oversized-packet' | 'login-throttled' | 'spoofed-identity';

export interface DeviceAuthOptions {
  credentials: CredentialStore;
  /** Accept devices without credentials (development, explicit opt-in, loopback only). */
  allowAnonymous: boolean;
  logger: Logger;
  counters: Counters;
  /** Default: LoginThrottle's defaults. */
  throttle?: LoginThrottle;
  /** Real time for throttling and held-back answers. Default: the system clock. */
  timers?: Clock;
  onAnomaly?: (deviceId: string, kind: BrokerAnomalyKind, detail: string) => void;
}

/** Who the client is. */
export interface Authenticated {
  deviceId: string;
  /** Connected without credentials (a ghost). */
  anonymous: boolean;
}

/** A refused CONNECT; `returnCode` is the CONNACK code (2 identifier, 3 unavailable, 4 bad credentials, 5 not authorized). */
export class AuthRefusal extends Error {
  constructor(
    readonly returnCode: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A throttled login is answered after this long (or when its block ends, if sooner). At most MAX_HELD
 * answers wait at once; past that they are given at once.
 */
const HOLD_MS = 1_000;
const MAX_HELD = 1_000;

export class DeviceAuthenticator {
  private readonly throttle: LoginThrottle;
  private readonly timers: Clock;
  /** Held-back answers: their timers, and how to answer them now (stop). */
  private readonly held = new Map<TimerHandle, () => void>();

  constructor(private readonly o: DeviceAuthOptions) {
    this.throttle = o.throttle ?? new LoginThrottle();
    this.timers = o.timers ?? systemClock;
  }

  /**
   * Resolves with who the client is, or rejects with an AuthRefusal. `decided` is called when a refusal
   * is known and only its held-back answer remains (no more work on this login: the broker's CONNECT
   * admission frees its slot then, so held-back answers never crowd out devices waiting to connect).
   */
  async authenticate(clientId: string, address: string, username: string | undefined, password: Buffer | undefined, decided: () => void = () => undefined): Promise<Authenticated> {
    if (username === undefined || password === undefined) return this.anonymous(clientId, address);
    if (!isValidId(username)) throw new AuthRefusal(4, 'user name is not a device id');
    // The client id must be the device id: otherwise one device could take over another's session.
    if (clientId !== username) throw new AuthRefusal(2, `client id ${clientId} must equal the device id ${username}`);
    const secret = password.toString('utf8');
    const { credentials, counters } = this.o;
    const now = (): number => this.timers.now();
    const verdict = this.throttle.check(clientId, address, now());
    if (verdict.throttled) {
      // A device that proved this very secret before is let in: someone else's failures under its id
      // or from its network never lock it out.
      if (credentials.verifiedBefore(username, secret)) return { deviceId: username, anonymous: false };
      counters.inc('mqtt.auth.throttled');
      const retry = Math.ceil(verdict.retryInMs / 1000);
      this.o.onAnomaly?.(username, 'login-throttled', `failed logins ${verdict.by === 'client' ? 'for this id' : `from ${address}`}; refused for ${retry} s`);
      decided();
      await this.holdBack(verdict.retryInMs);
      throw new AuthRefusal(3, `too many failed logins ${verdict.by === 'client' ? 'for this device id' : 'from this address'}; retry in ${retry} s`);
    }
    let ok: boolean;
    try {
      // Asked again when the check's turn comes: attempts queued before a block are dropped, not run.
      ok = await credentials.verify(username, secret, address, () => !this.throttle.check(clientId, address, now()).throttled);
    } catch (err) {
      if (!(err instanceof BusyError)) throw err;
      // Throttled while it waited in the queue, or the queue was full.
      counters.inc(this.throttle.check(clientId, address, now()).throttled ? 'mqtt.auth.throttled' : 'mqtt.auth.busy');
      decided();
      await this.holdBack(HOLD_MS);
      throw new AuthRefusal(3, 'too many logins being checked from this address; retry later');
    }
    if (!ok) {
      this.throttle.failed(clientId, address, now());
      throw new AuthRefusal(4, 'bad device credentials');
    }
    this.throttle.succeeded(clientId);
    return { deviceId: username, anonymous: false };
  }

  /** Answers every held-back refusal now and clears its timer; safe twice. */
  stop(): void {
    for (const [handle, answer] of this.held) {
      this.timers.clearTimeout(handle);
      answer();
    }
    this.held.clear();
  }

  /** A device without credentials: only when allowed, from this machine, and never a provisioned id. */
  private anonymous(clientId: string, address: string): Authenticated {
    const { counters, credentials, logger } = this.o;
    if (!this.o.allowAnonymous) throw new AuthRefusal(4, 'credentials required: provision the device with `fleet devices provision <id>`');
    if (!isValidId(clientId)) throw new AuthRefusal(2, 'client id is not a device id');
    if (!isLoopbackHost(address)) throw new AuthRefusal(5, 'devices without credentials may connect from this machine only');
    if (credentials.isProvisioned(clientId)) {
      counters.inc('mqtt.anonymous.refused');
      this.o.onAnomaly?.(clientId, 'spoofed-identity', `connect without credentials from ${address}`);
      throw new AuthRefusal(5, `${clientId} is a provisioned device: connect with its credentials`);
    }
    counters.inc('mqtt.anonymous.connects');
    logger.warn({ deviceId: clientId, address }, 'device connected without credentials (anonymous development mode): it is a ghost and never enters a wave');
    return { deviceId: clientId, anonymous: true };
  }

  /** Delays a refusal (bounded in time and in answers held), so a login loop slows to our pace. */
  private holdBack(ms: number): Promise<void> {
    if (this.held.size >= MAX_HELD) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const handle = this.timers.setTimeout(() => {
        this.held.delete(handle);
        resolve();
      }, Math.min(ms, HOLD_MS));
      this.held.set(handle, resolve);
    });
  }
}
