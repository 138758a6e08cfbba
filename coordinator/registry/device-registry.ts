/**
 * The fleet registry: every device the coordinator knows, from provisioning and hello messages, with
 * hardware model, firmware version, active slot, agent version, bucket, tags, online/offline (from
 * connections, last wills and last seen). Kept in memory (10,000 devices is a few MiB) and written
 * through to SQLite; `last seen` updates are batched and flushed with the telemetry writer.
 *
 * The registry belongs to the operator. A device's hardware model, once known — from provisioning, or
 * the first hello of a device provisioned without one — is authoritative: a hello claiming another is
 * refused (`checkHello`) and never changes it, so it never changes the device's rollout-topic ACL. With
 * `requireProvisioning` (the embedded broker, where every device has credentials) a device that was
 * never provisioned — one that connected without credentials in development — is a ghost: recorded
 * and shown, never a member of a wave.
 *
 * Reads come from memory (CONNECT authorisation and wave membership cannot wait for a round trip);
 * writes go through the async store (SQLite or PostgreSQL): the devices changed in a turn are stored
 * together, one batch at a time, so a device's writes land in order (turn-batch.ts). `provisioned`
 * resolves once the device is stored; changes from device messages are stored behind the handler, and
 * a failure is reported to `onWriteError`. Another coordinator on the same PostgreSQL database
 * changes rows this one keeps in memory: `reload` reads them again.
 * I/O shell (the store).
 */
import semver from 'semver';
import { bucketOf } from '@fleet/protocol/bucket';
import type { HelloMessage } from '@fleet/protocol/messages';
import type { SlotName, UpdateState } from '@fleet/protocol/update-state';
import { placeholders, type Sql, type SqlQueries } from '../store/sql.js';
import { MultiRowInsert } from '../store/multi-row-insert.js';
import { TurnBatch } from '../store/turn-batch.js';
import { definedProps } from '@fleet/firmware/defined-props';

export interface DeviceRecord {
  deviceId: string;
  hardwareModel: string | undefined;
  firmwareVersion: string | undefined;
  activeSlot: SlotName | undefined;
  agentVersion: string | undefined;
  bucket: number;
  /**
   * Every tag of the device, for targeting and filters: the operator's (provisioning) and the device's
   * own (hello), without duplicates. A hello never removes an operator tag.
   */
  tags: string[];
  /** Tags assigned by an operator at provisioning (`fleet devices provision --tags`). */
  operatorTags: string[];
  /** Tags the device reported in its last hello (its agent.json `tags`). */
  reportedTags: string[];
  securityFloor: number;
  online: boolean;
  firstSeen: number | undefined;
  lastSeen: number | undefined;
  lastHello: number | undefined;
  bootCount: number | undefined;
  provisionedAt: number | undefined;
  /** What the device last said about its update (from hello), for catch-up after a restart. */
  update: { deploymentId: string; state: UpdateState; toVersion?: string } | undefined;
  /** Never provisioned where provisioning is required: shown to operators, never in a wave. */
  ghost: boolean;
}

/** Why a hello is refused: it contradicts what the operator's registry says about the device. */
export interface HelloRefusal {
  kind: 'wrong-model';
  detail: string;
}

export interface RegistryOptions {
  /**
   * Devices must be provisioned to take part in rollouts (the embedded broker authenticates every
   * device, so an unprovisioned one connected without credentials). Default false.
   */
  requireProvisioning?: boolean;
  /** Told when a change could not be stored (the record in memory keeps it; the next change retries). */
  onWriteError?: (err: unknown, deviceId: string) => void;
  /**
   * Presence outlives this process: its devices are connected to a broker that is not its own (an
   * external broker, or the other nodes of an embedded cluster), so the stored online/offline stands
   * and the broker corrects it (last wills, `$SYS` uptime, the cluster's connection registry). Default
   * false: this process's embedded broker held every connection, and they ended with it.
   */
  presenceOutlivesProcess?: boolean;
}

export interface DeviceFilter {
  hardwareModel?: string;
  firmwareVersion?: string;
  online?: boolean;
  tag?: string;
}

/** Which devices a deployment may touch: models, a semver range of current versions, required tags. */
export interface DeviceTarget {
  hardware: readonly string[];
  /** semver range; default `*`. */
  versionRange?: string;
  tags?: readonly string[];
}

export interface DeviceRow {
  device_id: string;
  hardware_model: string | null;
  firmware_version: string | null;
  active_slot: string | null;
  agent_version: string | null;
  bucket: number;
  tags: string;
  operator_tags: string;
  security_floor: number;
  online: number;
  first_seen: number | null;
  last_seen: number | null;
  last_hello: number | null;
  boot_count: number | null;
  provisioned_at: number | null;
  update_json: string | null;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

/** Operator tags first, then the device's own, each once. */
export function unionTags(operator: readonly string[], reported: readonly string[]): string[] {
  return [...new Set([...operator, ...reported])];
}

function fromRow(r: DeviceRow, requireProvisioning: boolean): DeviceRecord {
  const operatorTags = JSON.parse(r.operator_tags) as string[];
  const reportedTags = JSON.parse(r.tags) as string[];
  return {
    deviceId: r.device_id,
    hardwareModel: opt(r.hardware_model),
    firmwareVersion: opt(r.firmware_version),
    activeSlot: opt(r.active_slot) as SlotName | undefined,
    agentVersion: opt(r.agent_version),
    bucket: r.bucket,
    tags: unionTags(operatorTags, reportedTags),
    operatorTags,
    reportedTags,
    securityFloor: r.security_floor,
    online: r.online === 1,
    firstSeen: opt(r.first_seen),
    lastSeen: opt(r.last_seen),
    lastHello: opt(r.last_hello),
    bootCount: opt(r.boot_count),
    provisionedAt: opt(r.provisioned_at),
    update: r.update_json ? (JSON.parse(r.update_json) as DeviceRecord['update']) : undefined,
    ghost: requireProvisioning && r.provisioned_at === null,
  };
}

export type RegistryChange = 'hello' | 'online' | 'offline' | 'provisioned' | 'version' | 'update';
export type RegistryListener = (device: DeviceRecord, change: RegistryChange) => void;

// The `tags` column holds the device-reported tags; `operator_tags` the operator's (migration 8).
const UPSERT = new MultiRowInsert(
  `INSERT INTO devices (device_id, hardware_model, firmware_version, active_slot, agent_version, bucket, tags,
    operator_tags, security_floor, online, first_seen, last_seen, last_hello, boot_count, provisioned_at, update_json)`,
  16,
  `ON CONFLICT (device_id) DO UPDATE SET hardware_model = excluded.hardware_model, firmware_version = excluded.firmware_version,
    active_slot = excluded.active_slot, agent_version = excluded.agent_version, tags = excluded.tags, operator_tags = excluded.operator_tags,
    security_floor = excluded.security_floor, online = excluded.online, first_seen = excluded.first_seen,
    last_seen = excluded.last_seen, last_hello = excluded.last_hello, boot_count = excluded.boot_count,
    provisioned_at = excluded.provisioned_at, update_json = excluded.update_json`,
);

function rowOf(d: DeviceRecord): (string | number | null)[] {
  return [
    d.deviceId,
    d.hardwareModel ?? null,
    d.firmwareVersion ?? null,
    d.activeSlot ?? null,
    d.agentVersion ?? null,
    d.bucket,
    JSON.stringify(d.reportedTags),
    JSON.stringify(d.operatorTags),
    d.securityFloor,
    d.online ? 1 : 0,
    d.firstSeen ?? null,
    d.lastSeen ?? null,
    d.lastHello ?? null,
    d.bootCount ?? null,
    d.provisionedAt ?? null,
    d.update ? JSON.stringify(d.update) : null,
  ];
}

export class DeviceRegistry {
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly dirtySeen = new Set<string>();
  private readonly listeners = new Set<RegistryListener>();
  /**
   * The devices changed in this turn, stored together: a wave's statuses and reconnects change
   * hundreds of devices a second, and a transaction each was most of the store's time.
   */
  private readonly batch = new TurnBatch<string>((ids) => this.store(ids));
  /** Per reload running: the devices whose batch settled since it began (their rows may predate it). */
  private readonly reads = new Set<Set<string>>();
  private lastFlushed: string[] = [];

  private constructor(
    private readonly sql: Sql,
    private readonly requireProvisioning: boolean,
    private readonly onWriteError: (err: unknown, deviceId: string) => void,
  ) {}

  /**
   * Loads every device. Unless presence outlives the process, devices are marked offline: the
   * connections to its own broker did not survive the restart (docs/replication.md, Presence).
   */
  static async load(sql: Sql, options: RegistryOptions = {}): Promise<DeviceRegistry> {
    const reg = new DeviceRegistry(sql, options.requireProvisioning ?? false, options.onWriteError ?? (() => {}));
    if (options.presenceOutlivesProcess !== true) await sql.run('UPDATE devices SET online = 0 WHERE online <> 0');
    await reg.reload();
    return reg;
  }

  /**
   * Reads devices from the store again (all, or the ones named), replacing what memory holds: the
   * seam through which changes another coordinator made to the shared store become visible here.
   * A device this process has a write pending for, or stored while the rows were read, keeps its
   * in-memory record: its row may have been read before that write.
   */
  async reload(deviceIds?: readonly string[]): Promise<void> {
    const stored = new Set<string>();
    this.reads.add(stored);
    let rows: DeviceRow[];
    try {
      rows = await this.read(deviceIds);
    } finally {
      this.reads.delete(stored);
    }
    for (const row of rows) if (!stored.has(row.device_id) && !this.batch.has(row.device_id)) this.applyRow(row);
  }

  private async read(deviceIds: readonly string[] | undefined): Promise<DeviceRow[]> {
    if (deviceIds === undefined) return this.sql.all<DeviceRow>('SELECT * FROM devices');
    // A few statements for any number of devices (a connect storm notifies thousands at once).
    const rows: DeviceRow[] = [];
    for (let i = 0; i < deviceIds.length; i += 500) {
      const chunk = deviceIds.slice(i, i + 500);
      rows.push(...(await this.sql.all<DeviceRow>(`SELECT * FROM devices WHERE device_id IN (${placeholders(chunk.length)})`, chunk)));
    }
    return rows;
  }

  /** Replaces a device's record with a row read from the store (reload, or a change notification). */
  applyRow(row: DeviceRow): DeviceRecord {
    const d = fromRow(row, this.requireProvisioning);
    const current = this.devices.get(d.deviceId);
    if (current) {
      // One object per device: callers may hold it.
      Object.assign(current, d);
      return current;
    }
    this.devices.set(d.deviceId, d);
    return d;
  }

  subscribe(listener: RegistryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(device: DeviceRecord, change: Parameters<RegistryListener>[1]): void {
    for (const l of this.listeners) l(device, change);
  }

  /** Stores the device's record as it is when its batch runs (after any earlier batch). */
  private save(deviceId: string): Promise<void> {
    return this.batch.add(deviceId);
  }

  /** Writes the records of `ids` (distinct) as they are now, in one transaction. */
  private async store(ids: readonly string[]): Promise<void> {
    const params = ids.flatMap((id) => {
      const d = this.devices.get(id);
      return d ? rowOf(d) : [];
    });
    try {
      if (params.length > 0) await this.sql.transaction((tx) => UPSERT.run(tx, params));
    } finally {
      // Before the batch leaves `has`: a reload sees these devices as pending or as stored.
      for (const stored of this.reads) for (const id of ids) stored.add(id);
    }
  }

  /** Stores in the background: a failure is reported, never thrown into a message handler. */
  private saveLater(deviceId: string): void {
    this.save(deviceId).catch((err: unknown) => this.onWriteError(err, deviceId));
  }

  /** Resolves when every change made so far has been written (or failed and been reported). */
  idle(): Promise<void> {
    return this.batch.idle();
  }

  private blank(deviceId: string): DeviceRecord {
    return {
      deviceId,
      hardwareModel: undefined,
      firmwareVersion: undefined,
      activeSlot: undefined,
      agentVersion: undefined,
      bucket: bucketOf(deviceId),
      tags: [],
      operatorTags: [],
      reportedTags: [],
      securityFloor: 0,
      online: false,
      firstSeen: undefined,
      lastSeen: undefined,
      lastHello: undefined,
      bootCount: undefined,
      provisionedAt: undefined,
      update: undefined,
      ghost: this.requireProvisioning,
    };
  }

  /**
   * Records a provisioned device (before it ever connects, or again to rotate its secret). `tags` are
   * the operator's and replace earlier operator tags; left out, the operator tags stay as they were.
   * Resolves once the record is stored.
   */
  async provisioned(deviceId: string, now: number, info: { hardwareModel?: string; tags?: string[] } = {}): Promise<DeviceRecord> {
    const d = this.devices.get(deviceId) ?? this.blank(deviceId);
    d.provisionedAt = now;
    d.ghost = false;
    // The operator says what the hardware is: this replaces any model known before.
    if (info.hardwareModel !== undefined) d.hardwareModel = info.hardwareModel;
    if (info.tags !== undefined) {
      d.operatorTags = [...new Set(info.tags)];
      d.tags = unionTags(d.operatorTags, d.reportedTags);
    }
    this.devices.set(deviceId, d);
    await this.save(deviceId);
    this.emit(d, 'provisioned');
    return d;
  }

  /**
   * Why this hello must be refused, or undefined: a device whose model is known (provisioned, or its
   * first hello) claiming another. Check before `applyHello`.
   */
  checkHello(hello: HelloMessage): HelloRefusal | undefined {
    const d = this.devices.get(hello.deviceId);
    if (d?.hardwareModel === undefined || d.hardwareModel === hello.hardwareModel) return undefined;
    return { kind: 'wrong-model', detail: `said hello as ${hello.hardwareModel}; registered as ${d.hardwareModel}` };
  }

  /**
   * Applies a hello (the device's birth message): identity, version, slot, tags, online. A known
   * hardware model is kept whatever the hello claims (`checkHello` refuses such a hello first).
   * In memory at once; stored behind.
   */
  applyHello(hello: HelloMessage, now: number): DeviceRecord {
    const d = this.devices.get(hello.deviceId) ?? this.blank(hello.deviceId);
    d.hardwareModel ??= hello.hardwareModel;
    d.firmwareVersion = hello.firmwareVersion;
    d.activeSlot = hello.activeSlot;
    d.agentVersion = hello.agentVersion;
    // The bucket is a function of the id; a device claiming another is ignored on that point.
    d.bucket = bucketOf(hello.deviceId);
    // The device's own tags replace what it said before; the operator's stay.
    d.reportedTags = [...new Set(hello.tags)];
    d.tags = unionTags(d.operatorTags, d.reportedTags);
    d.securityFloor = hello.securityFloor;
    d.online = true;
    d.firstSeen ??= now;
    d.lastSeen = now;
    d.lastHello = now;
    if (hello.bootCount !== undefined) d.bootCount = hello.bootCount;
    d.update = hello.update
      ? { deploymentId: hello.update.deploymentId, state: hello.update.state, ...(hello.update.toVersion ? { toVersion: hello.update.toVersion } : {}) }
      : undefined;
    this.devices.set(d.deviceId, d);
    this.dirtySeen.delete(d.deviceId);
    this.saveLater(d.deviceId);
    this.emit(d, 'hello');
    return d;
  }

  /** A message arrived from the device (batched write). */
  seen(deviceId: string, now: number): void {
    const d = this.devices.get(deviceId);
    if (!d) return;
    d.lastSeen = now;
    this.dirtySeen.add(deviceId);
    if (!d.online) this.setOnline(deviceId, true, now);
  }

  /** Records a firmware version reported outside hello (telemetry, status). */
  noteVersion(deviceId: string, version: string, slot?: SlotName): void {
    const d = this.devices.get(deviceId);
    if (!d || (d.firmwareVersion === version && (slot === undefined || d.activeSlot === slot))) return;
    d.firmwareVersion = version;
    if (slot !== undefined) d.activeSlot = slot;
    this.saveLater(deviceId);
    this.emit(d, 'version');
  }

  /**
   * Records what a status says about the device's update, so the record shows its latest state (a
   * committed or rolled-back update), not the one its last hello carried.
   */
  noteUpdate(deviceId: string, update: NonNullable<DeviceRecord['update']>): void {
    const d = this.devices.get(deviceId);
    if (!d) return;
    const u = d.update;
    if (u?.deploymentId === update.deploymentId && u.state === update.state && u.toVersion === update.toVersion) return;
    d.update = { deploymentId: update.deploymentId, state: update.state, ...definedProps({ toVersion: update.toVersion }) };
    this.saveLater(deviceId);
    this.emit(d, 'update');
  }

  setOnline(deviceId: string, online: boolean, now: number): void {
    const d = this.devices.get(deviceId);
    if (!d || d.online === online) return;
    d.online = online;
    d.lastSeen = now;
    this.saveLater(deviceId);
    this.emit(d, online ? 'online' : 'offline');
  }

  /**
   * Writes batched last-seen times with `tx` (the housekeeping transaction). On failure the devices
   * stay due, for the next flush.
   */
  async flushSeen(tx: SqlQueries): Promise<void> {
    const due = [...this.dirtySeen];
    this.dirtySeen.clear();
    this.lastFlushed = due;
    try {
      for (const id of due) {
        const d = this.devices.get(id);
        if (d?.lastSeen !== undefined) await tx.run('UPDATE devices SET last_seen = ? WHERE device_id = ?', [d.lastSeen, id]);
      }
    } catch (err) {
      this.flushRolledBack();
      throw err;
    }
  }

  /** The transaction of the last `flushSeen` was rolled back: those devices are due again. */
  flushRolledBack(): void {
    for (const id of this.lastFlushed) this.dirtySeen.add(id);
    this.lastFlushed = [];
  }

  get(deviceId: string): DeviceRecord | undefined {
    return this.devices.get(deviceId);
  }

  hardwareModelOf(deviceId: string): string | undefined {
    return this.devices.get(deviceId)?.hardwareModel;
  }

  /** A device that may take part in rollouts: known and not a ghost. */
  isTracked(deviceId: string): boolean {
    const d = this.devices.get(deviceId);
    return d !== undefined && !d.ghost;
  }

  get size(): number {
    return this.devices.size;
  }

  all(): IterableIterator<DeviceRecord> {
    return this.devices.values();
  }

  list(filter: DeviceFilter = {}): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    for (const d of this.devices.values()) {
      if (filter.hardwareModel !== undefined && d.hardwareModel !== filter.hardwareModel) continue;
      if (filter.firmwareVersion !== undefined && d.firmwareVersion !== filter.firmwareVersion) continue;
      if (filter.online !== undefined && d.online !== filter.online) continue;
      if (filter.tag !== undefined && !d.tags.includes(filter.tag)) continue;
      out.push(d);
    }
    return out.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  }

  /** Devices a deployment with this target may update (known model and version, all tags; no ghosts). */
  matching(target: DeviceTarget): DeviceRecord[] {
    const range = target.versionRange ?? '*';
    return this.list().filter((d) => matchesTarget(d, target, range));
  }
}

export function matchesTarget(d: DeviceRecord, target: DeviceTarget, range = target.versionRange ?? '*'): boolean {
  if (d.ghost || d.hardwareModel === undefined || d.firmwareVersion === undefined) return false;
  if (!target.hardware.includes(d.hardwareModel)) return false;
  if (!semver.satisfies(d.firmwareVersion, range, { includePrerelease: true })) return false;
  return (target.tags ?? []).every((t) => d.tags.includes(t));
}
