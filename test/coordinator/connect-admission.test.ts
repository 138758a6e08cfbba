/**
 * CONNECT admission (pure): a bound on CONNECTs in progress and a token bucket of new ones a second.
 */
import { describe, expect, it } from 'vitest';
import { ConnectAdmission } from '../../coordinator/broker/connect-admission.js';

describe('connect admission', () => {
  it('admits up to the bound in progress, refuses past it, and admits again as CONNECTs finish', () => {
    const a = new ConnectAdmission({ maxConnecting: 3, perSecond: 0 });
    expect([a.admit(0), a.admit(0), a.admit(0)].every((v) => v.admitted)).toBe(true);
    expect(a.admit(0)).toEqual({ admitted: false, by: 'in-progress' });
    expect(a.connecting).toBe(3);
    a.release();
    expect(a.admit(0)).toEqual({ admitted: true });
    expect(a.admit(0).admitted).toBe(false);
  });

  it('never counts below zero when released more often than admitted', () => {
    const a = new ConnectAdmission({ maxConnecting: 1, perSecond: 0 });
    a.release();
    expect(a.connecting).toBe(0);
    expect(a.admit(0).admitted).toBe(true);
    expect(a.admit(0).admitted).toBe(false);
  });

  it('admits a burst, then new CONNECTs at the rate, refusing the rest by rate', () => {
    const a = new ConnectAdmission({ maxConnecting: 1_000, perSecond: 10, burst: 5 });
    const at = (now: number, n: number): number => Array.from({ length: n }, () => a.admit(now)).filter((v) => v.admitted).length;
    expect(at(0, 8)).toBe(5);
    expect(a.admit(0)).toEqual({ admitted: false, by: 'rate' });
    // 10 a second: one every 100 ms, never more than the burst saved up.
    expect(at(100, 3)).toBe(1);
    expect(at(350, 5)).toBe(2);
    expect(at(60_000, 20)).toBe(5);
  });

  it('defaults the burst to one second of the rate, and at least one', () => {
    const a = new ConnectAdmission({ maxConnecting: 100, perSecond: 4 });
    expect(Array.from({ length: 10 }, () => a.admit(0)).filter((v) => v.admitted)).toHaveLength(4);
    const slow = new ConnectAdmission({ maxConnecting: 100, perSecond: 0.5 });
    expect(slow.admit(0).admitted).toBe(true);
    expect(slow.admit(1_000).admitted).toBe(false);
    expect(slow.admit(2_000).admitted).toBe(true);
  });

  it('refuses by the in-progress bound before spending a token', () => {
    const a = new ConnectAdmission({ maxConnecting: 1, perSecond: 1, burst: 2 });
    expect(a.admit(0).admitted).toBe(true);
    expect(a.admit(0)).toEqual({ admitted: false, by: 'in-progress' });
    a.release();
    expect(a.admit(0).admitted).toBe(true);
  });
});
