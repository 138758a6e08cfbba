/**
 * Devices' accounts on an external Mosquitto, kept by the coordinator through the dynamic-security
 * plugin: each change reads the accounts it touches (reads cost the plugin nothing), sends only the
 * commands that differ (dynsec-plan.ts) and checks every answer. At start-up, and whenever the broker
 * comes back, the whole fleet is reconciled: the default access set to deny, the coordinator's own
 * role, and every device's account against the store. I/O shell over DynsecControl.
 */
import type { Logger } from 'pino';
import { accountsAdminAcls, coordinatorAcls, ACCOUNTS_ADMIN_ROLE, COORDINATOR_ROLE, DEFAULT_ACL_ACCESS, deviceRoleName } from './dynsec-acls.js';
import { DynsecConnectionLostError, requireAnswered, type BrokerUptimeListener, type DynsecAnswer, type DynsecControl } from './dynsec-control.js';
import { planDevice, planReconcile, type BrokerAccountState, type DeviceAccount } from './dynsec-plan.js';
import {
  ClientListSchema,
  DefaultAclSchema,
  DynsecClientSchema,
  DynsecRoleSchema,
  RoleListSchema,
  type DynsecAcl,
  type DynsecClient,
  type DynsecCommand,
  type DynsecRole,
} from './dynsec-schema.js';
import type { BrokerAccounts, ReconcileReport } from './broker-accounts.js';
import { BrokerAccountsError } from './dynsec-control.js';

export interface DynsecAccountsOptions {
  control: DynsecControl;
  /** The coordinator's own broker username (its account gets the coordinator role if it lacks it). */
  username: string | undefined;
  logger: Logger;
}

const PAGE = 1_000;
/** Rounds of fixing the coordinator's own roles before giving up (each may end in a disconnection). */
const OWN_ACCOUNT_ATTEMPTS = 3;
/** How long to wait for the connection to come back after the plugin closed it. */
const RECONNECT_MS = 30_000;

/** "Client not found" / "Role not found": the thing is absent, which is an answer, not a failure. */
const notFound = (a: DynsecAnswer): boolean => /not found/i.test(a.response.error ?? '');

function dataOf<T>(a: DynsecAnswer | undefined, pick: (data: unknown) => T): T {
  if (!a || a.response.error !== undefined) {
    throw new BrokerAccountsError(`the broker could not ${a?.command.command ?? 'answer'}: ${a?.response.error ?? 'no answer'}`);
  }
  return pick(a.response.data);
}

export class DynsecAccounts implements BrokerAccounts {
  readonly kind = 'mosquitto-dynsec' as const;

  constructor(private readonly options: DynsecAccountsOptions) {}

  start(): Promise<void> {
    return this.options.control.start();
  }

  async push(accounts: readonly DeviceAccount[]): Promise<void> {
    if (accounts.length === 0) return;
    const states = await this.read(accounts.map((a) => a.deviceId));
    const commands = accounts.flatMap((a, i) => planDevice(a, states[i]!));
    requireAnswered(await this.options.control.run(commands));
  }

  onReturn(listener: () => void): void {
    this.options.control.onReconnect(listener);
  }

  onRestart(listener: BrokerUptimeListener): void {
    this.options.control.onRestart(listener);
  }

  enforce(): void {
    // The plugin closes a client's connection itself when its password changes or it is disabled.
  }

  /** Each device's client and role as the broker holds them (absent when not found). */
  private async read(deviceIds: readonly string[]): Promise<BrokerAccountState[]> {
    const commands: DynsecCommand[] = deviceIds.flatMap((id) => [
      { command: 'getClient' as const, username: id },
      { command: 'getRole' as const, rolename: deviceRoleName(id) },
    ]);
    const answers = await this.options.control.run(commands);
    requireAnswered(answers, notFound);
    return deviceIds.map((_, i) => {
      const c = answers[2 * i]!;
      const r = answers[2 * i + 1]!;
      const state: BrokerAccountState = {};
      if (!notFound(c)) state.client = dataOf(c, (d) => DynsecClientSchema.parse((d as { client: unknown }).client));
      if (!notFound(r)) state.role = dataOf(r, (d) => DynsecRoleSchema.parse((d as { role: unknown }).role));
      return state;
    });
  }

  async reconcile(devices: readonly DeviceAccount[]): Promise<ReconcileReport> {
    const control = this.options.control;
    const ownChanges = await this.fixOwnAccount();
    const defaults = dataOf((await control.run([{ command: 'getDefaultACLAccess' }]))[0], (d) => DefaultAclSchema.parse(d).acls);
    const defaultAccessFixed = DEFAULT_ACL_ACCESS.some((want) => defaults.find((h) => h.acltype === want.acltype)?.allow !== want.allow);
    const fixes: DynsecCommand[] = defaultAccessFixed ? [{ command: 'setDefaultACLAccess', acls: DEFAULT_ACL_ACCESS.map((a) => ({ ...a })) }] : [];
    const [clients, roles] = [await this.listClients(), await this.listRoles()];
    const plan = planReconcile(devices, clients, roles);
    const commands = [...fixes, ...plan.commands];
    requireAnswered(await control.run(commands));
    return {
      devices: devices.length,
      created: plan.created,
      disabled: plan.disabled,
      corrected: plan.corrected,
      unknownDisabled: plan.unknownDisabled,
      defaultAccessFixed,
      changes: ownChanges + commands.length,
    };
  }

  /**
   * The coordinator's own roles and account, alone and first: the plugin disconnects every client
   * holding a role or account that a command changes before it answers, this connection included.
   * So a lost connection is expected here; the fixes are read back once it is up again.
   */
  private async fixOwnAccount(): Promise<number> {
    const control = this.options.control;
    let changes = 0;
    for (let attempt = 1; ; attempt++) {
      const fixes = await this.ownAccountCommands();
      if (fixes.length === 0) return changes;
      if (attempt > OWN_ACCOUNT_ATTEMPTS) {
        throw new BrokerAccountsError(
          `the coordinator's own roles on the broker (${COORDINATOR_ROLE}, ${ACCOUNTS_ADMIN_ROLE}) still lack ${fixes.length} rule(s) after ${OWN_ACCOUNT_ATTEMPTS} attempts: check them with \`mosquitto_ctrl dynsec getRole\` (docs/mosquitto.md)`,
        );
      }
      changes += fixes.length;
      try {
        requireAnswered(await control.run(fixes));
      } catch (err) {
        if (!(err instanceof DynsecConnectionLostError)) throw err;
        this.options.logger.info({ commands: fixes.length }, 'the broker disconnected the coordinator while changing its own roles, as it does; checking them again once reconnected');
        await control.whenReady(RECONNECT_MS);
      }
    }
  }

  /** The coordinator's roles hold exactly their rules, and its own account holds the traffic role. */
  private async ownAccountCommands(): Promise<DynsecCommand[]> {
    const wanted: [string, DynsecAcl[]][] = [
      [COORDINATOR_ROLE, coordinatorAcls()],
      [ACCOUNTS_ADMIN_ROLE, accountsAdminAcls()],
    ];
    const username = this.options.username;
    const reads: DynsecCommand[] = [...wanted.map(([rolename]) => ({ command: 'getRole' as const, rolename })), ...(username !== undefined ? [{ command: 'getClient' as const, username }] : [])];
    const answers = await this.options.control.run(reads);
    requireAnswered(answers, notFound);
    const out: DynsecCommand[] = [];
    wanted.forEach(([rolename, acls], i) => {
      const a = answers[i]!;
      if (notFound(a)) {
        out.push({ command: 'createRole', rolename, acls });
        return;
      }
      const have = dataOf(a, (d) => DynsecRoleSchema.parse((d as { role: unknown }).role)).acls;
      const key = (x: DynsecAcl): string => `${x.acltype} ${x.topic} ${x.allow} ${x.priority}`;
      // Rules an operator added to these roles are kept; missing ones are added.
      for (const w of acls) if (!have.some((h) => key(h) === key(w))) out.push({ command: 'addRoleACL', rolename, ...w });
    });
    if (username !== undefined) {
      const a = answers[wanted.length]!;
      const client = notFound(a) ? undefined : dataOf(a, (d) => DynsecClientSchema.parse((d as { client: unknown }).client));
      if (client && !client.roles.some((r) => r.rolename === COORDINATOR_ROLE)) out.push({ command: 'addClientRole', username, rolename: COORDINATOR_ROLE });
    }
    return out;
  }

  private async listClients(): Promise<DynsecClient[]> {
    const out: DynsecClient[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = dataOf((await this.options.control.run([{ command: 'listClients', verbose: true, count: PAGE, offset }]))[0], (d) => ClientListSchema.parse(d));
      out.push(...page.clients);
      if (page.clients.length < PAGE || out.length >= page.totalCount) return out;
    }
  }

  private async listRoles(): Promise<DynsecRole[]> {
    const out: DynsecRole[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = dataOf((await this.options.control.run([{ command: 'listRoles', verbose: true, count: PAGE, offset }]))[0], (d) => RoleListSchema.parse(d));
      out.push(...page.roles);
      if (page.roles.length < PAGE || out.length >= page.totalCount) return out;
    }
  }

  stop(): Promise<void> {
    return this.options.control.stop();
  }
}
