/**
 * The paced clock's timers: a binary min-heap on (due, seq), where cleared timers leave lazily (when
 * they reach the top) or by compaction once they are most of the heap. Pure data structure.
 */

export interface HeapTimer {
  due: number;
  seq: number;
  state: 'pending' | 'done';
}

const before = (a: HeapTimer, b: HeapTimer): boolean => a.due < b.due || (a.due === b.due && a.seq < b.seq);

export class TimerHeap<T extends HeapTimer> {
  private items: T[] = [];
  private cleared = 0;

  /** The earliest pending timer (cleared ones on top are dropped). */
  peek(): T | undefined {
    while (this.items.length && this.items[0]!.state !== 'pending') {
      this.pop();
      this.cleared = Math.max(0, this.cleared - 1);
    }
    return this.items[0];
  }

  push(timer: T): void {
    const h = this.items;
    h.push(timer);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): T | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** A timer in the heap was cleared (its state set to done): compacts once they are most of it. */
  noteCleared(): void {
    this.cleared++;
    if (this.cleared > 1024 && this.cleared > this.items.length / 2) {
      const live = this.items.filter((x) => x.state === 'pending');
      this.items = [];
      this.cleared = 0;
      for (const x of live) this.push(x);
    }
  }

  /** Removes and returns every pending timer. */
  drain(): T[] {
    const pending = this.items.filter((x) => x.state === 'pending');
    this.items = [];
    this.cleared = 0;
    return pending;
  }
}
