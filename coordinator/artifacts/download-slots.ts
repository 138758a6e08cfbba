/**
 * Download slots: at most `global` downloads at once, and at most `perDevice` for one authenticated
 * device, so that neither a reconnect storm nor one device (or whoever holds its secret) can take every
 * slot. A slot is a lease whose release is idempotent, so every path out of a download may call it.
 * Pure data structure.
 */
export interface SlotLimits {
  global: number;
  perDevice: number;
}

export type SlotGrant = { ok: true; release: () => void } | { ok: false; scope: 'global' | 'device' };

export class DownloadSlots {
  private active = 0;
  private readonly byDevice = new Map<string, number>();

  constructor(private readonly limits: SlotLimits) {}

  /** Downloads holding a slot now. */
  get activeCount(): number {
    return this.active;
  }

  activeFor(deviceId: string): number {
    return this.byDevice.get(deviceId) ?? 0;
  }

  /** A slot for `deviceId` (undefined: an anonymous client, bounded by the global limit only). */
  acquire(deviceId: string | undefined): SlotGrant {
    if (deviceId !== undefined && this.activeFor(deviceId) >= this.limits.perDevice) return { ok: false, scope: 'device' };
    if (this.active >= this.limits.global) return { ok: false, scope: 'global' };
    this.active++;
    if (deviceId !== undefined) this.byDevice.set(deviceId, this.activeFor(deviceId) + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.active--;
        if (deviceId === undefined) return;
        const left = this.activeFor(deviceId) - 1;
        if (left > 0) this.byDevice.set(deviceId, left);
        else this.byDevice.delete(deviceId);
      },
    };
  }
}
