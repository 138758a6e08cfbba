/**
 * The wire format of Mosquitto's dynamic security plugin (Mosquitto 2.0): commands published as
 * `{"commands": [...]}` on `$CONTROL/dynamic-security/v1`, answers on `…/v1/response` as
 * `{"responses": [{command, error?, correlationData?, data?}]}` in the order the commands were sent,
 * and the client and role records that `getClient`, `listClients` and `listRoles` return. The plugin
 * echoes a command's `correlationData`, which is how answers are matched to the commands that asked.
 * Pure (zod).
 */
import { z } from 'zod';

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = '$CONTROL/dynamic-security/v1/response';

export const ACL_TYPES = ['publishClientSend', 'publishClientReceive', 'subscribeLiteral', 'subscribePattern', 'unsubscribeLiteral', 'unsubscribePattern'] as const;
export const AclTypeSchema = z.enum(ACL_TYPES);
export type AclType = z.infer<typeof AclTypeSchema>;

/** One rule of a role. A higher `priority` is checked first; Mosquitto's default is 0. */
export const DynsecAclSchema = z.object({
  acltype: AclTypeSchema,
  topic: z.string().min(1).max(65_535),
  allow: z.boolean(),
  priority: z.number().int().default(0),
});
export type DynsecAcl = z.infer<typeof DynsecAclSchema>;

const RoleRefSchema = z.object({ rolename: z.string(), priority: z.number().int().optional() });

/** A client as the plugin reports it (`disabled` appears only when true). */
export const DynsecClientSchema = z.object({
  username: z.string(),
  clientid: z.string().optional(),
  disabled: z.boolean().default(false),
  roles: z.array(RoleRefSchema).default([]),
  /** A group's roles apply to its members too. */
  groups: z.array(z.object({ groupname: z.string() })).default([]),
});
export type DynsecClient = z.infer<typeof DynsecClientSchema>;

export const DynsecRoleSchema = z.object({
  rolename: z.string(),
  acls: z.array(DynsecAclSchema).default([]),
});
export type DynsecRole = z.infer<typeof DynsecRoleSchema>;

export const DynsecResponseSchema = z.object({
  command: z.string(),
  error: z.string().optional(),
  correlationData: z.string().optional(),
  data: z.unknown().optional(),
});
export type DynsecResponse = z.infer<typeof DynsecResponseSchema>;

export const DynsecResponsesSchema = z.object({ responses: z.array(DynsecResponseSchema) });

/** `listClients` / `listRoles` with `verbose: true`. */
export const ClientListSchema = z.object({ totalCount: z.number().int(), clients: z.array(DynsecClientSchema) });
export const RoleListSchema = z.object({ totalCount: z.number().int(), roles: z.array(DynsecRoleSchema) });

export type DefaultAclType = 'publishClientSend' | 'publishClientReceive' | 'subscribe' | 'unsubscribe';
export const DefaultAclSchema = z.object({
  acls: z.array(z.object({ acltype: z.enum(['publishClientSend', 'publishClientReceive', 'subscribe', 'unsubscribe']), allow: z.boolean() })),
});

/** The commands fleet sends (a subset of the plugin's). */
export type DynsecCommand =
  | { command: 'createClient'; username: string; clientid?: string; password?: string; roles?: { rolename: string }[] }
  | { command: 'deleteClient'; username: string }
  | { command: 'enableClient'; username: string }
  | { command: 'disableClient'; username: string }
  | { command: 'setClientPassword'; username: string; password: string }
  | { command: 'setClientId'; username: string; clientid: string }
  | { command: 'addClientRole'; username: string; rolename: string }
  | { command: 'removeClientRole'; username: string; rolename: string }
  | { command: 'removeGroupClient'; groupname: string; username: string }
  | { command: 'getClient'; username: string }
  | { command: 'listClients'; verbose: true; count: number; offset: number }
  | { command: 'createRole'; rolename: string; acls: DynsecAcl[] }
  | { command: 'deleteRole'; rolename: string }
  | { command: 'getRole'; rolename: string }
  | { command: 'listRoles'; verbose: true; count: number; offset: number }
  | { command: 'addRoleACL'; rolename: string; acltype: AclType; topic: string; allow: boolean; priority: number }
  | { command: 'removeRoleACL'; rolename: string; acltype: AclType; topic: string }
  | { command: 'getDefaultACLAccess' }
  | { command: 'setDefaultACLAccess'; acls: { acltype: DefaultAclType; allow: boolean }[] };

/** Commands that only read: the plugin answers them without writing its configuration file. */
export const READ_COMMANDS: ReadonlySet<DynsecCommand['command']> = new Set(['getClient', 'listClients', 'getRole', 'listRoles', 'getDefaultACLAccess']);

/** What a command is about, for messages: `client pi-1`, `role fleet:device:pi-1`. */
export function commandSubject(c: DynsecCommand): string {
  if ('username' in c) return `client ${c.username}`;
  if ('rolename' in c) return `role ${c.rolename}`;
  return 'the default ACL access';
}
