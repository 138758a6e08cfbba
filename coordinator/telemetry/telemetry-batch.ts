/**
 * The hand-off between the broker's thread and the telemetry thread. The broker's thread does not
 * parse telemetry: it appends each message's raw bytes to one buffer (a memcpy), and the buffer moves
 * to the telemetry thread without a copy. Structured-cloning parsed messages costs more per message
 * than the parse itself. The telemetry thread parses with the protocol/ schema and reports back what
 * the registry needs (firmware versions seen) and what the edge counts (bad messages). Pure.
 */
import { parsePayload } from '@fleet/protocol/parse';
import { TelemetryMessageSchema, type TelemetryMessage } from '@fleet/protocol/messages';
import type { SlotName } from '@fleet/protocol/update-state';

/** Messages as they crossed the broker: device (from the topic), receive time, payload bytes. */
export interface TelemetryBatch {
  count: number;
  /** Receive times (coordinator clock, ms). */
  ats: Float64Array<ArrayBuffer>;
  /**
   * Per message its device id (UTF-8) then its payload, back to back: message i's id is bytes
   * [ends[2i-1] ?? 0, ends[2i]) and its payload [ends[2i], ends[2i+1]). Ids travel in the bytes too:
   * cloning an array of strings would cost the broker's thread more than the copy.
   */
  bytes: Uint8Array<ArrayBuffer>;
  ends: Uint32Array<ArrayBuffer>;
}

/** Builds batches on the broker's thread. */
export class BatchBuilder {
  private ats: number[] = [];
  private ends: number[] = [];
  private bytes: Buffer;
  private used = 0;

  constructor(private readonly initialBytes = 64 * 1024) {
    this.bytes = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.ats.length;
  }

  add(deviceId: string, payload: Uint8Array, at: number): void {
    const room = Buffer.byteLength(deviceId) + payload.length;
    if (this.used + room > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + room));
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    this.used += this.bytes.write(deviceId, this.used);
    this.ends.push(this.used);
    this.bytes.set(payload, this.used);
    this.used += payload.length;
    this.ends.push(this.used);
    this.ats.push(at);
  }

  /** The batch so far (its buffers are the batch's own, transferable); the builder starts empty. */
  take(): TelemetryBatch {
    const bytes = new Uint8Array(this.used);
    bytes.set(this.bytes.subarray(0, this.used));
    const batch: TelemetryBatch = { count: this.ats.length, ats: Float64Array.from(this.ats), bytes, ends: Uint32Array.from(this.ends) };
    this.ats = [];
    this.ends = [];
    this.used = 0;
    if (this.bytes.length > 16 * this.initialBytes) this.bytes = Buffer.allocUnsafe(this.initialBytes);
    return batch;
  }
}

/** The device ids of a batch's messages, in order. */
export function batchDeviceIds(batch: TelemetryBatch): string[] {
  const buf = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.length);
  return Array.from({ length: batch.count }, (_, i) => buf.toString('utf8', i === 0 ? 0 : batch.ends[2 * i - 1], batch.ends[2 * i]));
}

/** A firmware version (and slot) a device reported that differs from the last one this thread saw. */
export interface VersionNote {
  deviceId: string;
  firmwareVersion: string;
  slot: SlotName;
}

export interface BadTelemetry {
  deviceId: string;
  reason: string;
}

export interface DecodedBatch {
  parsed: number;
  bad: BadTelemetry[];
  notes: VersionNote[];
}

/**
 * Parses a batch, handing each valid message to `onMessage` with its receive time (no wrapper object
 * per message: this runs for every telemetry message). `lastVersions` (device → its last note) is the
 * caller's memory across batches, so a version is reported once when it changes, not with every message.
 */
export function decodeBatch(
  batch: TelemetryBatch,
  lastVersions: Map<string, VersionNote>,
  onMessage: (msg: TelemetryMessage, at: number) => void,
): DecodedBatch {
  const out: DecodedBatch = { parsed: 0, bad: [], notes: [] };
  const buf = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.length);
  const ends = batch.ends;
  for (let i = 0; i < batch.count; i++) {
    const idEnd = ends[2 * i]!;
    const deviceId = buf.toString('utf8', i === 0 ? 0 : ends[2 * i - 1], idEnd);
    // Decoded straight from the batch's bytes: no Buffer view per message.
    const parsed = parsePayload(TelemetryMessageSchema, buf.toString('utf8', idEnd, ends[2 * i + 1]), 'telemetry message');
    if (!parsed.ok) {
      out.bad.push({ deviceId, reason: parsed.error.message });
      continue;
    }
    const msg = parsed.value;
    if (msg.deviceId !== deviceId) {
      out.bad.push({ deviceId, reason: `payload deviceId ${msg.deviceId} differs from the topic's` });
      continue;
    }
    const last = lastVersions.get(deviceId);
    if (last?.firmwareVersion !== msg.firmwareVersion || last.slot !== msg.slot) {
      const note = { deviceId, firmwareVersion: msg.firmwareVersion, slot: msg.slot };
      lastVersions.set(deviceId, note);
      out.notes.push(note);
    }
    out.parsed++;
    onMessage(msg, batch.ats[i]!);
  }
  return out;
}
