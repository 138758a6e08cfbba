/**
 * The coordinator's control channel to Mosquitto's dynamic-security plugin: a connection of its own
 * (clean session, MQTT 5, so that a publish the broker refuses comes back as a PUBACK reason code
 * instead of vanishing) that sends commands on `$CONTROL/dynamic-security/v1` and matches each answer
 * to its command by the `correlationData` the plugin echoes (and by the command's name). Commands go
 * in batches, one batch in flight at a time, in order (a role before the client that holds it); a
 * batch unanswered within the timeout fails with what to check. I/O shell (mqtt.js).
 *
 * Separate from the ingest connection on purpose: that one acks device messages in order and must
 * never wait for anything of ours (external-broker.ts).
 */
import type { Logger } from 'pino';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Clock } from '@fleet/protocol/clock';
import { FleetError, errorMessage } from '@fleet/protocol/errors';
import { ACCOUNTS_ADMIN_ROLE } from './dynsec-acls.js';
import { formatIssues } from '@fleet/protocol/parse';
import { definedProps } from '@fleet/firmware/defined-props';
import { DYNSEC_RESPONSE_TOPIC, DYNSEC_TOPIC, DynsecResponsesSchema, READ_COMMANDS, commandSubject, type DynsecCommand, type DynsecResponse } from './dynsec-schema.js';

export interface DynsecControlOptions {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  logger: Logger;
  /** Real time, for the answer timeout. */
  timers: Clock;
  /** How long a batch may wait for its answers, plus `perChangeMs` for each command in it that changes something. Default 10 s. */
  timeoutMs?: number;
  /**
   * Mosquitto 2.0 rewrites its whole configuration file after each change (about 40 ms at 1,200
   * devices, growing with the file), so a batch of changes on a large fleet takes seconds. Default 2 s.
   */
  perChangeMs?: number;
  /** Commands per message (each message must stay under the broker's max_packet_size). Default 50. */
  batchSize?: number;
}

/** The broker, or its plugin, did not do what was asked. */
export class BrokerAccountsError extends FleetError {
  constructor(message: string) {
    super('broker-accounts', message);
  }
}

/**
 * The connection closed before the answers came. Mosquitto 2.0's plugin disconnects every client that
 * holds a role or account a command changes before it sends the answers, the sender included: changes
 * to the coordinator's own roles end this way, and are checked by reading them back once reconnected.
 */
export class DynsecConnectionLostError extends FleetError {
  constructor(url: string) {
    super('broker-unreachable', `the connection to ${url} closed before the dynamic-security plugin answered; the change may or may not have been made`);
  }
}

/** One command's answer, with the command it answers. */
export interface DynsecAnswer {
  command: DynsecCommand;
  response: DynsecResponse;
}

const MAX_BATCH_BYTES = 64 * 1024;
const UPTIME_TOPIC = '$SYS/broker/uptime';

/**
 * Told that every connection the broker held `sinceMs` ago has ended (a device not heard from since
 * is gone): when the broker started since it was last heard (`restarted`: `sinceMs` is the time since
 * the connection to it was lost; a broker killed sends no last wills), and at the first live uptime
 * this process hears (`first`: `sinceMs` is the uptime rounded up; presence stored before this
 * process started may predate a restart while no coordinator ran).
 */
export type BrokerUptimeListener = (sinceMs: number, seen: 'restarted' | 'first') => void;

interface Waiter {
  command: DynsecCommand;
  resolve: (r: DynsecResponse) => void;
}

export class DynsecControl {
  private client: MqttClient | undefined;
  private readonly waiting = new Map<string, Waiter>();
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private reconnected: (() => void) | undefined;
  private restarted: BrokerUptimeListener | undefined;
  /** When the connection was lost (real time, ms), until the broker's uptime says whether it restarted. */
  private lostAt: number | undefined;
  /** No uptime heard yet by this process. */
  private firstUptime = true;
  /** Connected and subscribed to the answers. */
  private ready = false;
  private readonly readyWaiters = new Set<() => void>();

  constructor(private readonly options: DynsecControlOptions) {}

  /** Called each time the connection comes back after a loss (the broker may have restarted). */
  onReconnect(listener: () => void): void {
    this.reconnected = listener;
  }

  /**
   * Called when the broker's `$SYS/broker/uptime` says it started again since it was last heard
   * (with its uptime), and with the first uptime this process hears (see BrokerUptimeListener).
   */
  onRestart(listener: BrokerUptimeListener): void {
    this.restarted = listener;
  }

  /** Connects and subscribes to the answers; throws `broker-unreachable` naming the URL. */
  async start(): Promise<void> {
    if (this.client || this.stopped) return;
    const { connect } = await import('mqtt');
    const o = this.options;
    const clientOptions: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...definedProps({ username: o.username, password: o.password }),
    };
    const client = connect(o.url, clientOptions);
    client.on('message', (topic, payload, packet) => this.answer(topic, payload, packet.retain));
    client.on('error', (err) => o.logger.warn({ err: err.message }, 'broker accounts connection error'));
    let connects = 0;
    client.on('close', () => {
      this.ready = false;
      this.lostAt ??= o.timers.now();
    });
    client.on('connect', () => {
      connects++;
      // Subscribed again on every connect: the session is clean.
      client.subscribe(DYNSEC_RESPONSE_TOPIC, { qos: 1 }, (err) => {
        if (err) {
          o.logger.error({ err: err.message, role: ACCOUNTS_ADMIN_ROLE }, 'cannot read the dynamic-security answers: the broker account needs the accounts-admin role');
          return;
        }
        this.ready = true;
        for (const w of [...this.readyWaiters]) w();
        // Liveness only: a broker without $SYS (or an account without the rule) just never says.
        client.subscribe(UPTIME_TOPIC, { qos: 0 }, () => undefined);
        if (connects > 1) this.reconnected?.();
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      const granted = await client.subscribeAsync(DYNSEC_RESPONSE_TOPIC, { qos: 1 });
      if (granted.some((g) => g.qos >= 0x80)) throw new Error(`subscribing to ${DYNSEC_RESPONSE_TOPIC} was refused`);
    } catch (err) {
      await client.endAsync(true).catch(() => undefined);
      throw new FleetError(
        'broker-unreachable',
        `cannot manage accounts on ${o.url}: ${errorMessage(err)}; check --broker and the credentials file (the account needs the ${ACCOUNTS_ADMIN_ROLE} role, see docs/mosquitto.md)`,
      );
    }
    this.client = client;
    this.ready = client.connected;
  }

  /** Resolves once connected and subscribed to the answers again; rejects after `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.ready && this.client?.connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.options.timers.clearTimeout(timer);
        this.readyWaiters.delete(done);
        resolve();
      };
      const timer = this.options.timers.setTimeout(() => {
        this.readyWaiters.delete(done);
        reject(new FleetError('broker-unreachable', `not connected to ${this.options.url} again within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.readyWaiters.add(done);
    });
  }

  /**
   * Sends the commands in order, in batches, and resolves with every answer (errors included: which
   * ones matter is the caller's call). Rejects when the broker cannot be reached or does not answer.
   */
  run(commands: readonly DynsecCommand[]): Promise<DynsecAnswer[]> {
    const next = this.queue.then(() => this.runNow(commands));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runNow(commands: readonly DynsecCommand[]): Promise<DynsecAnswer[]> {
    const out: DynsecAnswer[] = [];
    for (const batch of this.batches(commands)) out.push(...(await this.send(batch)));
    return out;
  }

  private *batches(commands: readonly DynsecCommand[]): Generator<DynsecCommand[]> {
    const size = this.options.batchSize ?? 50;
    let batch: DynsecCommand[] = [];
    let bytes = 0;
    for (const c of commands) {
      const n = JSON.stringify(c).length + 64;
      if (batch.length > 0 && (batch.length >= size || bytes + n > MAX_BATCH_BYTES)) {
        yield batch;
        batch = [];
        bytes = 0;
      }
      batch.push(c);
      bytes += n;
    }
    if (batch.length > 0) yield batch;
  }

  private async send(batch: DynsecCommand[]): Promise<DynsecAnswer[]> {
    const client = this.client;
    if (!client || this.stopped) throw new FleetError('broker-stopped', 'the broker accounts connection is closed');
    if (!client.connected) throw new FleetError('broker-unreachable', `not connected to ${this.options.url}: the broker's accounts cannot be changed now; try again once it is back`);
    const tagged = batch.map((command) => ({ command, correlationData: `fleet-${process.pid}-${++this.seq}` }));
    const answers = tagged.map(
      ({ command, correlationData }) => new Promise<DynsecResponse>((resolve) => this.waiting.set(correlationData, { command, resolve })),
    );
    const changes = batch.filter((c) => !READ_COMMANDS.has(c.command)).length;
    const timeoutMs = (this.options.timeoutMs ?? 10_000) + changes * (this.options.perChangeMs ?? 2_000);
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    let onClose: (() => void) | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      onClose = () => reject(new DynsecConnectionLostError(this.options.url));
      client.once('close', onClose);
      timer = this.options.timers.setTimeout(() => {
        reject(
          new BrokerAccountsError(
            `the broker's dynamic-security plugin did not answer ${batch.length} command(s) within ${Math.round(timeoutMs / 1000)} s: check that mosquitto.conf loads it (plugin …mosquitto_dynamic_security.so with plugin_opt_config_file) and that the broker is not overloaded (docs/mosquitto.md)`,
          ),
        );
      }, timeoutMs);
    });
    try {
      const payload = JSON.stringify({ commands: tagged.map(({ command, correlationData }) => ({ ...command, correlationData })) });
      await Promise.race([client.publishAsync(DYNSEC_TOPIC, payload, { qos: 1 }), timedOut]).catch((err: unknown) => {
        if (err instanceof FleetError) throw err;
        // MQTT 5: a publish the ACL refuses comes back as PUBACK 0x87.
        throw new BrokerAccountsError(`the broker refused a dynamic-security command (${errorMessage(err)}): the coordinator's broker account needs the ${ACCOUNTS_ADMIN_ROLE} role (docs/mosquitto.md)`);
      });
      const responses = await Promise.race([Promise.all(answers), timedOut]);
      return tagged.map(({ command }, i) => ({ command, response: responses[i]! }));
    } finally {
      if (timer) this.options.timers.clearTimeout(timer);
      if (onClose) client.removeListener('close', onClose);
      for (const { correlationData } of tagged) this.waiting.delete(correlationData);
    }
  }

  private answer(topic: string, payload: Buffer, retained: boolean): void {
    if (topic === UPTIME_TOPIC) return this.uptime(payload, retained);
    if (topic !== DYNSEC_RESPONSE_TOPIC) return;
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      this.options.logger.warn({ bytes: payload.length }, 'dynamic-security answer is not JSON; ignored');
      return;
    }
    const parsed = DynsecResponsesSchema.safeParse(json);
    if (!parsed.success) {
      this.options.logger.warn({ issues: formatIssues(parsed.error) }, 'dynamic-security answer has an unexpected shape; ignored');
      return;
    }
    for (const r of parsed.data.responses) {
      // Answers to others' commands (mosquitto_ctrl, another coordinator) carry no correlation of ours.
      const w = r.correlationData !== undefined ? this.waiting.get(r.correlationData) : undefined;
      if (!w) continue;
      if (r.command !== w.command.command) {
        w.resolve({ command: w.command.command, error: `answered as ${r.command}` });
        continue;
      }
      w.resolve(r);
    }
  }

  /**
   * `$SYS/broker/uptime` is "<n> seconds", every `sys_interval` and retained (never persisted). The
   * first one after a lost connection (the retained copy the subscription gets) says whether the
   * broker started since: its uptime is then no longer than the time since the loss, and every device
   * not heard from since the loss is gone. The first live one this process hears is reported too,
   * with the uptime rounded up to the next second, so that a device heard just after the start is
   * never taken for one that was not; not the retained copy, which is up to `sys_interval` old and
   * would put the start that much too late.
   */
  private uptime(payload: Buffer, retained: boolean): void {
    const m = /^(\d+) seconds$/.exec(payload.toString('utf8').trim());
    if (!m) return;
    const uptimeMs = (Number(m[1]) + 1) * 1000;
    const lostAt = this.lostAt;
    this.lostAt = undefined;
    if (lostAt !== undefined) {
      const sinceLoss = this.options.timers.now() - lostAt;
      if (uptimeMs <= sinceLoss + 1000) {
        this.firstUptime = false;
        return this.report(sinceLoss, 'restarted');
      }
    }
    if (!this.firstUptime || retained) return;
    this.firstUptime = false;
    this.report(uptimeMs, 'first');
  }

  private report(sinceMs: number, seen: 'restarted' | 'first'): void {
    try {
      this.restarted?.(sinceMs, seen);
    } catch (err) {
      this.options.logger.error({ err: errorMessage(err) }, 'handling a broker restart failed');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync(true).catch(() => undefined);
  }
}

/** Throws naming the first command the plugin refused (other than the ones `tolerated` allows). */
export function requireAnswered(answers: readonly DynsecAnswer[], tolerated: (a: DynsecAnswer) => boolean = () => false): void {
  const failed = answers.find((a) => a.response.error !== undefined && !tolerated(a));
  if (failed) {
    throw new BrokerAccountsError(`the broker refused ${failed.command.command} for ${commandSubject(failed.command)}: ${failed.response.error}`);
  }
}
