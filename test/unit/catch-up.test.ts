import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CATCH_UP_MAX_RETRY_MS, CatchUp } from "../../src/broker/redis/catch-up.ts";

/** A read that fails its first `failures` calls, then succeeds; counts its calls. */
function flaky(failures: number): { read: () => Promise<void>; calls: () => number } {
  let n = 0;
  return {
    read: async () => {
      n++;
      if (n <= failures) throw new Error(`down ${n}`);
    },
    calls: () => n,
  };
}

describe("CatchUp", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("tries a failed read again with a doubling delay capped at 2 s, until it succeeds", async () => {
    const c = new CatchUp();
    const r = flaky(7);
    c.start([r.read]);
    await vi.advanceTimersByTimeAsync(0);
    expect(r.calls()).toBe(1);
    // 100, 200, 400, 800, 1600, then 2000 and 2000 again.
    for (const [delay, calls] of [[100, 2], [200, 3], [400, 4], [800, 5], [1600, 6], [CATCH_UP_MAX_RETRY_MS, 7], [CATCH_UP_MAX_RETRY_MS, 8]] as const) {
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(r.calls()).toBe(calls - 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(r.calls()).toBe(calls);
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  it("repeats only the reads that failed", async () => {
    const c = new CatchUp();
    const ok = flaky(0);
    const bad = flaky(2);
    c.start([ok.read, bad.read]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(bad.calls()).toBe(3);
    expect(ok.calls()).toBe(1);
  });

  it("leaves no timer when every read succeeds at once", async () => {
    const c = new CatchUp();
    c.start([async () => {}, async () => {}]);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("stops retrying on stop(), and a newer start ends the older one's retries", async () => {
    const stopped = new CatchUp();
    const a = flaky(100);
    stopped.start([a.read]);
    await vi.advanceTimersByTimeAsync(0);
    stopped.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(a.calls()).toBe(1);
    stopped.start([a.read]);
    await vi.advanceTimersByTimeAsync(0);
    expect(a.calls()).toBe(1);

    const c = new CatchUp();
    const old = flaky(100);
    const fresh = flaky(0);
    c.start([old.read]);
    await vi.advanceTimersByTimeAsync(0);
    c.start([fresh.read]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(old.calls()).toBe(1);
    expect(fresh.calls()).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("retries a read that throws instead of returning a promise", async () => {
    const c = new CatchUp();
    let n = 0;
    c.start([
      () => {
        if (++n === 1) throw new Error("sync");
        return Promise.resolve();
      },
    ]);
    await vi.advanceTimersByTimeAsync(100);
    expect(n).toBe(2);
    c.stop();
  });
});
