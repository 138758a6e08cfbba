/**
 * The dynamic-security plans, pure and table-driven: what a device's role holds (acl.ts's rules as
 * Mosquitto ACLs), which commands turn a broker's account into the wanted one (only what differs:
 * every change costs Mosquitto 2.0 a rewrite of its file), and a fleet-wide reconciliation that is
 * idempotent.
 */
import { describe, expect, it } from 'vitest';
import { bucketOf } from '../../protocol/bucket.js';
import { deviceAcls, deviceRoleName, coordinatorAcls } from '../../coordinator/broker/dynsec-acls.js';
import { planDevice, planReconcile, type BrokerAccountState, type DeviceAccount } from '../../coordinator/broker/dynsec-plan.js';
import type { DynsecClient, DynsecCommand, DynsecRole } from '../../coordinator/broker/dynsec-schema.js';

const B = bucketOf('pi-1');

/** Applies commands to an in-memory broker the way the plugin does (enough for these plans). */
function apply(state: { clients: Map<string, DynsecClient>; roles: Map<string, DynsecRole> }, commands: readonly DynsecCommand[]): void {
  for (const c of commands) {
    switch (c.command) {
      case 'createRole':
        state.roles.set(c.rolename, { rolename: c.rolename, acls: c.acls.map((a) => ({ ...a })) });
        break;
      case 'addRoleACL':
        state.roles.get(c.rolename)!.acls.push({ acltype: c.acltype, topic: c.topic, allow: c.allow, priority: c.priority });
        break;
      case 'removeRoleACL': {
        const r = state.roles.get(c.rolename)!;
        r.acls = r.acls.filter((a) => !(a.acltype === c.acltype && a.topic === c.topic));
        break;
      }
      case 'createClient':
        state.clients.set(c.username, { username: c.username, ...(c.clientid !== undefined ? { clientid: c.clientid } : {}), disabled: false, roles: c.roles ?? [], groups: [] });
        break;
      case 'disableClient':
        state.clients.get(c.username)!.disabled = true;
        break;
      case 'enableClient':
        state.clients.get(c.username)!.disabled = false;
        break;
      case 'setClientId':
        state.clients.get(c.username)!.clientid = c.clientid;
        break;
      case 'addClientRole':
        state.clients.get(c.username)!.roles.push({ rolename: c.rolename });
        break;
      case 'removeClientRole': {
        const cl = state.clients.get(c.username)!;
        cl.roles = cl.roles.filter((r) => r.rolename !== c.rolename);
        break;
      }
      case 'removeGroupClient': {
        const cl = state.clients.get(c.username)!;
        cl.groups = cl.groups.filter((g) => g.groupname !== c.groupname);
        break;
      }
      case 'setClientPassword':
        break;
      case 'deleteClient':
      case 'deleteRole':
      case 'getClient':
      case 'getRole':
      case 'listClients':
      case 'listRoles':
      case 'getDefaultACLAccess':
      case 'setDefaultACLAccess':
        throw new Error(`not modelled: ${c.command}`);
    }
  }
}

describe('device role', () => {
  it('holds its own topics, its model and bucket, the flags: literals only', () => {
    expect(deviceAcls('pi-1', 'rpi4')).toEqual([
      { acltype: 'publishClientSend', topic: 'fleet/v1/devices/pi-1/hello', allow: true, priority: 0 },
      { acltype: 'publishClientSend', topic: 'fleet/v1/devices/pi-1/status', allow: true, priority: 0 },
      { acltype: 'publishClientSend', topic: 'fleet/v1/devices/pi-1/telemetry', allow: true, priority: 0 },
      { acltype: 'publishClientSend', topic: 'fleet/v1/devices/pi-1/presence', allow: true, priority: 0 },
      { acltype: 'subscribeLiteral', topic: 'fleet/v1/devices/pi-1/commands', allow: true, priority: 0 },
      { acltype: 'publishClientReceive', topic: 'fleet/v1/devices/pi-1/commands', allow: true, priority: 0 },
      { acltype: 'subscribeLiteral', topic: 'fleet/v1/flags', allow: true, priority: 0 },
      { acltype: 'publishClientReceive', topic: 'fleet/v1/flags', allow: true, priority: 0 },
      { acltype: 'subscribeLiteral', topic: `fleet/v1/rollout/rpi4/${B}`, allow: true, priority: 0 },
      { acltype: 'publishClientReceive', topic: `fleet/v1/rollout/rpi4/${B}`, allow: true, priority: 0 },
    ]);
  });

  it('before its model is known: its bucket of any model, the wildcard itself denied first', () => {
    expect(deviceAcls('pi-1', undefined).slice(-3)).toEqual([
      { acltype: 'subscribePattern', topic: `fleet/v1/rollout/+/${B}`, allow: true, priority: 0 },
      { acltype: 'subscribeLiteral', topic: `fleet/v1/rollout/+/${B}`, allow: false, priority: 1 },
      { acltype: 'publishClientReceive', topic: `fleet/v1/rollout/+/${B}`, allow: true, priority: 0 },
    ]);
  });

  it('the coordinator reads what devices publish (not its own commands) and writes manifests, commands and flags', () => {
    const acls = coordinatorAcls();
    expect(acls.filter((a) => a.acltype === 'publishClientReceive').map((a) => a.topic)).toEqual(['hello', 'status', 'telemetry', 'presence'].map((c) => `fleet/v1/devices/+/${c}`));
    expect(acls.filter((a) => a.acltype === 'publishClientSend').map((a) => a.topic)).toEqual(['fleet/v1/rollout/#', 'fleet/v1/devices/+/commands', 'fleet/v1/flags']);
  });
});

const role = (id: string, model: string | undefined): DynsecRole => ({ rolename: deviceRoleName(id), acls: deviceAcls(id, model) });
const client = (id: string, over: Partial<DynsecClient> = {}): DynsecClient => ({ username: id, clientid: id, disabled: false, roles: [{ rolename: deviceRoleName(id) }], groups: [], ...over });
const want = (over: Partial<DeviceAccount> = {}): DeviceAccount => ({ deviceId: 'pi-1', hardwareModel: 'rpi4', enabled: true, ...over });
const names = (cs: DynsecCommand[]): string[] => cs.map((c) => c.command);

describe('planDevice', () => {
  const cases: [string, DeviceAccount, BrokerAccountState, string[]][] = [
    ['a new device: its role, then its client with the secret', want({ secret: 's' }), {}, ['createRole', 'createClient']],
    ['already right: nothing', want(), { client: client('pi-1'), role: role('pi-1', 'rpi4') }, []],
    ['rotation: the password only', want({ secret: 's2' }), { client: client('pi-1'), role: role('pi-1', 'rpi4') }, ['setClientPassword']],
    ['revocation: disabled', want({ enabled: false }), { client: client('pi-1'), role: role('pi-1', 'rpi4') }, ['disableClient']],
    ['revoked and absent: no account is made', want({ enabled: false }), {}, []],
    ['re-provisioned after revocation: new secret, then enabled', want({ secret: 's3' }), { client: client('pi-1', { disabled: true }), role: role('pi-1', 'rpi4') }, ['setClientPassword', 'enableClient']],
    [
      'another model: the two rollout rules swapped',
      want({ hardwareModel: 'cm4' }),
      { client: client('pi-1'), role: role('pi-1', 'rpi4') },
      ['removeRoleACL', 'removeRoleACL', 'addRoleACL', 'addRoleACL'],
    ],
    [
      'the first hello names the model: the any-model rules narrowed',
      want(),
      { client: client('pi-1'), role: role('pi-1', undefined) },
      ['removeRoleACL', 'removeRoleACL', 'removeRoleACL', 'addRoleACL', 'addRoleACL'],
    ],
    [
      'extra roles, a group and another client id: all taken away',
      want(),
      { client: client('pi-1', { clientid: 'x', roles: [{ rolename: 'admin' }], groups: [{ groupname: 'g' }] }), role: role('pi-1', 'rpi4') },
      ['setClientId', 'removeClientRole', 'removeGroupClient', 'addClientRole'],
    ],
  ];
  it.each(cases)('%s', (_name, w, have, expected) => {
    const commands = planDevice(w, have);
    expect(names(commands)).toEqual(expected);
    // Applying the plan leaves nothing to do.
    const state = { clients: new Map(have.client ? [[have.client.username, structuredClone(have.client)]] : []), roles: new Map(have.role ? [[have.role.rolename, structuredClone(have.role)]] : []) };
    apply(state, commands);
    const after: BrokerAccountState = {};
    const c = state.clients.get('pi-1');
    const r = state.roles.get(deviceRoleName('pi-1'));
    if (c) after.client = c;
    if (r) after.role = r;
    expect(planDevice({ ...w, secret: undefined as never }, after).filter((x) => x.command !== 'setClientPassword')).toEqual([]);
  });

  it('a new secret on a disabled account is set before the account is enabled', () => {
    const commands = planDevice(want({ secret: 'new' }), { client: client('pi-1', { disabled: true }), role: role('pi-1', 'rpi4') });
    expect(commands).toEqual([
      { command: 'setClientPassword', username: 'pi-1', password: 'new' },
      { command: 'enableClient', username: 'pi-1' },
    ]);
  });
});

describe('planReconcile', () => {
  it('creates missing accounts, disables revoked and unknown ones, corrects the rest, and is idempotent', () => {
    const devices: DeviceAccount[] = [
      { deviceId: 'ok-1', hardwareModel: 'rpi4', enabled: true },
      { deviceId: 'missing-1', hardwareModel: 'rpi4', enabled: true },
      { deviceId: 'revoked-1', hardwareModel: 'rpi4', enabled: false },
      { deviceId: 'moved-1', hardwareModel: 'cm4', enabled: true },
      { deviceId: 'revoked-gone', hardwareModel: 'rpi4', enabled: false },
    ];
    const state = {
      clients: new Map<string, DynsecClient>([
        ['ok-1', client('ok-1')],
        ['revoked-1', client('revoked-1')],
        ['moved-1', client('moved-1')],
        ['stranger', client('stranger')],
        ['fleet:coordinator', { username: 'fleet:coordinator', disabled: false, roles: [{ rolename: 'fleet:coordinator' }], groups: [] }],
        ['someone', { username: 'someone', disabled: false, roles: [{ rolename: 'their-role' }], groups: [] }],
      ]),
      roles: new Map<string, DynsecRole>([
        [deviceRoleName('ok-1'), role('ok-1', 'rpi4')],
        [deviceRoleName('revoked-1'), role('revoked-1', 'rpi4')],
        [deviceRoleName('moved-1'), role('moved-1', 'rpi4')],
        [deviceRoleName('stranger'), role('stranger', 'rpi4')],
      ]),
    };
    const plan = planReconcile(devices, [...state.clients.values()], [...state.roles.values()]);
    expect(plan).toMatchObject({ created: ['missing-1'], disabled: ['revoked-1'], corrected: ['moved-1'], unknownDisabled: ['stranger'] });
    // A created account has no password: it logs in only after a rotation sets one.
    expect(plan.commands.find((c) => c.command === 'createClient')).toEqual({ command: 'createClient', username: 'missing-1', clientid: 'missing-1', roles: [{ rolename: deviceRoleName('missing-1') }] });
    apply(state, plan.commands);
    const again = planReconcile(devices, [...state.clients.values()], [...state.roles.values()]);
    expect(again.commands).toEqual([]);
    expect(state.clients.get('someone')).toMatchObject({ disabled: false, roles: [{ rolename: 'their-role' }] });
    expect(state.clients.get('fleet:coordinator')?.disabled).toBe(false);
  });
});
