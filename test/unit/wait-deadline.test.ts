import { afterEach, describe, expect, it, vi } from "vitest";
import { startWaitDeadline, waitTimeoutMs } from "../../src/results/wait-deadline.ts";

const DAY = 86_400_000;

describe("startWaitDeadline", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires a wait longer than one timer can hold at its end, not before", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    startWaitDeadline(30 * DAY, fired);
    vi.advanceTimersByTime(30 * DAY - 1000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1000);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it("never fires for Infinity, and a cancelled one never fires", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    startWaitDeadline(Infinity, fired);
    startWaitDeadline(50 * DAY, fired)();
    vi.advanceTimersByTime(100 * DAY);
    expect(fired).not.toHaveBeenCalled();
  });
});

describe("waitTimeoutMs", () => {
  it("takes seconds >= 0 and Infinity, and refuses the rest in one line", () => {
    expect(waitTimeoutMs(2.5)).toBe(2500);
    expect(waitTimeoutMs(Infinity)).toBe(Infinity);
    expect(() => waitTimeoutMs(Number.NaN)).toThrow(/found NaN$/);
    expect(() => waitTimeoutMs(-1)).toThrow(/found -1$/);
    expect(() => waitTimeoutMs("10")).toThrow(/found "10"$/);
  });
});
