/**
 * What to send the dynamic-security plugin so that the broker's accounts match the coordinator's
 * store: the commands that turn what the broker has (a client and a role, or nothing) into what a
 * device should have, and the same over a whole fleet at start-up. Pure; table-tested.
 *
 * Mosquitto 2.0 rewrites its whole configuration file after every command that changes something
 * (about 40 ms per command at 1,200 devices on this project's 2-core machine, growing with the file,
 * see docs/mosquitto.md), so the plans send only what differs and nothing for an account already right.
 */
import { deviceAcls, deviceIdOfRole, deviceRoleName } from './dynsec-acls.js';
import type { DynsecAcl, DynsecClient, DynsecCommand, DynsecRole } from './dynsec-schema.js';

/** What the broker should hold for one device. */
export interface DeviceAccount {
  deviceId: string;
  /** The provisioned (or first hello's) model; undefined until known. */
  hardwareModel: string | undefined;
  /** False once revoked: the account stays, disabled (its connection is closed). */
  enabled: boolean;
  /** A new secret to set (provisioning, rotation); undefined keeps the broker's. */
  secret?: string;
}

export interface BrokerAccountState {
  client?: DynsecClient;
  role?: DynsecRole;
}

const aclKey = (a: Pick<DynsecAcl, 'acltype' | 'topic'>): string => `${a.acltype} ${a.topic}`;
const sameAcl = (a: DynsecAcl, b: DynsecAcl): boolean => aclKey(a) === aclKey(b) && a.allow === b.allow && a.priority === b.priority;

/** Removals first (a rule whose allow or priority changes is removed and added again), then additions. */
function aclChanges(rolename: string, have: readonly DynsecAcl[], want: readonly DynsecAcl[]): DynsecCommand[] {
  const out: DynsecCommand[] = [];
  for (const a of have) {
    if (!want.some((w) => sameAcl(w, a))) out.push({ command: 'removeRoleACL', rolename, acltype: a.acltype, topic: a.topic });
  }
  for (const w of want) {
    if (!have.some((a) => sameAcl(a, w))) out.push({ command: 'addRoleACL', rolename, acltype: w.acltype, topic: w.topic, allow: w.allow, priority: w.priority });
  }
  return out;
}

/**
 * The commands that give a device exactly its account: its own role with acl.ts's rules for its
 * model, no other role or group, client id = username = device id, enabled unless revoked, and the
 * new secret when one is given. A revoked device without an account gets none. Disabling comes first
 * (the plugin closes the connection at once); a new secret is set before the account is enabled, so
 * the old one never works again.
 */
export function planDevice(want: DeviceAccount, have: BrokerAccountState): DynsecCommand[] {
  const id = want.deviceId;
  if (!have.client && !want.enabled) return [];
  const rolename = deviceRoleName(id);
  const acls = deviceAcls(id, want.hardwareModel);
  const out: DynsecCommand[] = [];
  const client = have.client;
  if (client && !client.disabled && !want.enabled) out.push({ command: 'disableClient', username: id });
  out.push(...(have.role ? aclChanges(rolename, have.role.acls, acls) : [{ command: 'createRole' as const, rolename, acls }]));
  if (!client) {
    out.push({ command: 'createClient', username: id, clientid: id, roles: [{ rolename }], ...(want.secret !== undefined ? { password: want.secret } : {}) });
    return out;
  }
  if (client.clientid !== id) out.push({ command: 'setClientId', username: id, clientid: id });
  for (const r of client.roles) if (r.rolename !== rolename) out.push({ command: 'removeClientRole', username: id, rolename: r.rolename });
  for (const g of client.groups) out.push({ command: 'removeGroupClient', groupname: g.groupname, username: id });
  if (!client.roles.some((r) => r.rolename === rolename)) out.push({ command: 'addClientRole', username: id, rolename });
  if (want.secret !== undefined) out.push({ command: 'setClientPassword', username: id, password: want.secret });
  if (client.disabled && want.enabled) out.push({ command: 'enableClient', username: id });
  return out;
}

export interface ReconcilePlan {
  commands: DynsecCommand[];
  /** Devices with credentials here and no account on the broker: created without a secret, so each needs a rotation. */
  created: string[];
  /** Revoked here, still enabled on the broker: disabled. */
  disabled: string[];
  /** Accounts whose role, client id, roles or enabled state were corrected. */
  corrected: string[];
  /** Accounts holding a device role of a device this coordinator does not know: disabled. */
  unknownDisabled: string[];
}

/**
 * The whole fleet at once: every device the store knows (enabled = has credentials, revoked = not)
 * against every client and role on the broker. Idempotent: a second plan over the result is empty.
 * Accounts that are not devices' (the coordinator's, an operator's) are left alone unless they hold
 * a device role of an unknown device.
 */
export function planReconcile(devices: readonly DeviceAccount[], clients: readonly DynsecClient[], roles: readonly DynsecRole[]): ReconcilePlan {
  const clientByName = new Map(clients.map((c) => [c.username, c]));
  const roleByName = new Map(roles.map((r) => [r.rolename, r]));
  const known = new Set(devices.map((d) => d.deviceId));
  const plan: ReconcilePlan = { commands: [], created: [], disabled: [], corrected: [], unknownDisabled: [] };
  for (const d of devices) {
    const client = clientByName.get(d.deviceId);
    const role = roleByName.get(deviceRoleName(d.deviceId));
    const commands = planDevice({ deviceId: d.deviceId, hardwareModel: d.hardwareModel, enabled: d.enabled }, { ...(client ? { client } : {}), ...(role ? { role } : {}) });
    if (commands.length === 0) continue;
    plan.commands.push(...commands);
    if (!client) plan.created.push(d.deviceId);
    else if (!d.enabled && !client.disabled) plan.disabled.push(d.deviceId);
    else plan.corrected.push(d.deviceId);
  }
  for (const c of clients) {
    if (known.has(c.username) || c.disabled) continue;
    if (c.roles.some((r) => deviceIdOfRole(r.rolename) !== undefined)) {
      plan.commands.push({ command: 'disableClient', username: c.username });
      plan.unknownDisabled.push(c.username);
    }
  }
  return plan;
}
