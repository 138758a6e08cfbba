/**
 * Watches one download's progress: it sits between the image file and the response, counting the
 * bytes passed on, and `pending()` says how many of those still wait in the socket's buffer (not yet
 * taken by the kernel). Delivered = passed on − pending, so a client that stops reading stops the
 * count, also while only the response's tail is left. The watch drops the transfer (it destroys
 * itself and calls `onDrop`, whose owner closes the connection, which frees the slot) when nothing was
 * delivered for `idleTimeoutMs`, or fewer than `minBytesPerSecond` over a full `rateWindowMs`
 * window. Checks run on a timer a few times per limit, not per chunk. I/O shell (node:stream,
 * injected real-time timers).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Clock, TimerHandle } from '@fleet/protocol/clock';
import { FleetError } from '@fleet/protocol/errors';

export interface TransferLimits {
  /** Drop a client that accepts no bytes for this long. */
  idleTimeoutMs: number;
  /** Drop a client slower than this over a window; 0: no rate check. */
  minBytesPerSecond: number;
  rateWindowMs: number;
}

export type DropReason = 'idle' | 'slow';

export class TransferDroppedError extends FleetError {
  constructor(readonly why: DropReason) {
    super('download-dropped', why === 'idle' ? 'the client stopped reading' : 'the client reads too slowly');
  }
}

export class TransferWatch extends Transform {
  /** Bytes passed on to the client so far. */
  bytes = 0;
  dropped: DropReason | undefined;
  private delivered = 0;
  private lastMoveAt: number;
  private windowStart: number;
  private windowBytes = 0;
  private timer: TimerHandle | undefined;
  private stopped = false;
  private readonly tickMs: number;

  constructor(
    private readonly timers: Clock,
    private readonly limits: TransferLimits,
    /** Bytes passed on that the socket has not handed to the kernel yet. */
    private readonly pending: () => number,
    private readonly onDrop: (why: DropReason) => void,
  ) {
    super();
    this.lastMoveAt = timers.now();
    this.windowStart = this.lastMoveAt;
    const rate = limits.minBytesPerSecond > 0 ? limits.rateWindowMs : Infinity;
    this.tickMs = Math.max(10, Math.min(limits.idleTimeoutMs, rate) / 4);
    this.schedule();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  /** Clears the timer. Safe twice. */
  stop(): void {
    this.stopped = true;
    if (this.timer) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.stop();
    callback(err);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.timers.setTimeout(() => this.check(), this.tickMs);
  }

  private check(): void {
    if (this.stopped) return;
    const now = this.timers.now();
    const delivered = Math.max(this.delivered, this.bytes - this.pending());
    if (delivered > this.delivered) {
      this.windowBytes += delivered - this.delivered;
      this.delivered = delivered;
      this.lastMoveAt = now;
    }
    if (now - this.lastMoveAt >= this.limits.idleTimeoutMs) return this.dropTransfer('idle');
    if (this.limits.minBytesPerSecond > 0 && now - this.windowStart >= this.limits.rateWindowMs) {
      const rate = (this.windowBytes * 1000) / (now - this.windowStart);
      if (rate < this.limits.minBytesPerSecond) return this.dropTransfer('slow');
      this.windowStart = now;
      this.windowBytes = 0;
    }
    this.schedule();
  }

  private dropTransfer(why: DropReason): void {
    this.dropped = why;
    this.stop();
    this.onDrop(why);
    this.destroy(new TransferDroppedError(why));
  }
}
