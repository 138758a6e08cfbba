import { describe, expect, it } from 'vitest';
import { TimerHeap, type HeapTimer } from '../../simulator/timer-heap.js';

const timer = (due: number, seq: number): HeapTimer & { label: string } => ({ due, seq, state: 'pending', label: `${due}/${seq}` });

describe('TimerHeap', () => {
  it('pops in due order, then in the order set for equal due times', () => {
    const heap = new TimerHeap<ReturnType<typeof timer>>();
    const dues = [50, 10, 30, 10, 90, 30, 0, 70];
    dues.forEach((due, seq) => heap.push(timer(due, seq)));
    const out: string[] = [];
    for (let t = heap.peek(); t; t = heap.peek()) out.push(heap.pop()!.label);
    expect(out).toEqual(['0/6', '10/1', '10/3', '30/2', '30/5', '50/0', '70/7', '90/4']);
  });

  it('skips cleared timers, compacts when they are most of it, and drains the pending ones', () => {
    const heap = new TimerHeap<ReturnType<typeof timer>>();
    const all = Array.from({ length: 3000 }, (_, i) => timer(3000 - i, i));
    for (const t of all) heap.push(t);
    for (const t of all.slice(0, 2500)) {
      t.state = 'done';
      heap.noteCleared();
    }
    expect(heap.peek()!.due).toBe(1);
    const pending = heap.drain();
    expect(pending).toHaveLength(500);
    expect(pending.every((t) => t.state === 'pending')).toBe(true);
    expect(heap.peek()).toBeUndefined();
  });
});
