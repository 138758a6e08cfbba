/**
 * Bounded, fair concurrency for expensive work on behalf of remote parties (password checks: scrypt on
 * libuv's thread pool). At most `concurrency` tasks run; the rest wait in one lane per party (a source
 * address), and lanes take turns, so a party with a hundred checks queued delays another party's by
 * at most one check per running slot. A lane (or the whole queue) that is full refuses at once with
 * BusyError instead of growing. Pure apart from the tasks it runs.
 */
import { FleetError } from '@fleet/protocol/errors';

export class BusyError extends FleetError {
  constructor(message: string) {
    super('busy', message);
  }
}

export interface FairQueueOptions {
  /** Tasks running at once. */
  concurrency: number;
  /** Tasks waiting per lane; past it that lane's new tasks are refused. */
  maxPerLane: number;
  /** Tasks waiting in all lanes together. */
  maxQueued: number;
}

export class FairQueue {
  private running = 0;
  private queued = 0;
  /** Lanes in turn order: the first lane's first job runs next, then that lane moves to the back. */
  private readonly lanes = new Map<string, (() => void)[]>();

  constructor(private readonly o: FairQueueOptions) {}

  /**
   * Runs `task` when a slot is free and its lane's turn comes. `bounded: false` (the operator's own
   * work, e.g. provisioning) waits however long its lane gets instead of being refused.
   */
  run<T>(lane: string, task: () => Promise<T>, bounded = true): Promise<T> {
    if (this.running < this.o.concurrency && this.queued === 0) return this.start(task);
    const waiting = this.lanes.get(lane);
    if (bounded && ((waiting?.length ?? 0) >= this.o.maxPerLane || this.queued >= this.o.maxQueued)) {
      return Promise.reject(new BusyError(`too many checks waiting (${lane}); retry later`));
    }
    return new Promise<T>((resolve, reject) => {
      const job = (): void => {
        this.start(task).then(resolve, reject);
      };
      if (waiting) waiting.push(job);
      else this.lanes.set(lane, [job]);
      this.queued++;
      this.next();
    });
  }

  /** Tasks waiting (not running). */
  get waiting(): number {
    return this.queued;
  }

  private async start<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.next();
    }
  }

  private next(): void {
    while (this.running < this.o.concurrency) {
      const first = this.lanes.entries().next();
      if (first.done) return;
      const [lane, jobs] = first.value;
      const job = jobs.shift()!;
      this.lanes.delete(lane);
      if (jobs.length) this.lanes.set(lane, jobs);
      this.queued--;
      job();
    }
  }
}
