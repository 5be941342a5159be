import { describe, expect, it } from "vitest";
import type { RetryPolicy } from "../../src/config/schema.ts";
import { NonRetryableError } from "../../src/errors.ts";
import { backoffDelay, decideRetry, effectivePolicy } from "../../src/worker/retry-policy.ts";

const base: RetryPolicy = { max: 3, countdown: 1, backoff: true, backoff_max: 600, jitter: false };
const boom = new Error("boom");

describe("backoffDelay", () => {
  it("doubles per retry with backoff", () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(base, n))).toEqual([1, 2, 4, 8, 16]);
  });

  it("keeps the countdown without backoff", () => {
    expect([0, 1, 5].map((n) => backoffDelay({ ...base, backoff: false, countdown: 3 }, n))).toEqual([3, 3, 3]);
  });

  it("caps at backoff_max", () => {
    const p = { ...base, countdown: 10, backoff_max: 30 };
    expect([0, 1, 2, 3, 20].map((n) => backoffDelay(p, n))).toEqual([10, 20, 30, 30, 30]);
  });

  it("jitter stays within [delay/2, delay]", () => {
    const p = { ...base, jitter: true, countdown: 4 };
    expect(backoffDelay(p, 1, () => 0)).toBe(4);
    expect(backoffDelay(p, 1, () => 0.999999)).toBeCloseTo(8, 4);
    expect(backoffDelay(p, 1, () => 0.5)).toBe(6);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(p, 2);
      expect(d).toBeGreaterThanOrEqual(8);
      expect(d).toBeLessThanOrEqual(16);
    }
  });

  it("jitter applies after the cap, so the cap is never exceeded", () => {
    const p = { ...base, jitter: true, countdown: 100, backoff_max: 150 };
    expect(backoffDelay(p, 5, () => 0.999999)).toBeLessThanOrEqual(150);
    expect(backoffDelay(p, 5, () => 0)).toBe(75);
  });
});

describe("decideRetry", () => {
  it("retries until max retries were made", () => {
    expect(decideRetry(base, 0, boom)).toEqual({ retry: true, delaySec: 1, max: 3 });
    expect(decideRetry(base, 2, boom)).toEqual({ retry: true, delaySec: 4, max: 3 });
    expect(decideRetry(base, 3, boom).retry).toBe(false);
  });

  it("never retries a NonRetryableError", () => {
    expect(decideRetry(base, 0, new NonRetryableError("card declined")).retry).toBe(false);
    // Thrown by a task module that loaded another copy of qworker: another class, the same code.
    class OtherCopyNonRetryable extends Error {
      readonly code = "E_NON_RETRYABLE";
    }
    expect(decideRetry(base, 0, new OtherCopyNonRetryable("card declined")).retry).toBe(false);
  });

  it("retries only what retryOn accepts", () => {
    const onlyTimeouts = (e: Error) => e.name === "TimeoutError";
    const timeout = Object.assign(new Error("slow"), { name: "TimeoutError" });
    expect(decideRetry(base, 0, boom, onlyTimeouts).retry).toBe(false);
    expect(decideRetry(base, 0, timeout, onlyTimeouts).retry).toBe(true);
  });

  it("max 0 means a single run", () => {
    expect(decideRetry({ ...base, max: 0 }, 0, boom).retry).toBe(false);
  });
});

describe("effectivePolicy", () => {
  it("task options override the configured default, key by key", () => {
    expect(effectivePolicy(base, { retry: { max: 5, countdown: 2 } })).toEqual({ ...base, max: 5, countdown: 2 });
  });

  it("retry: false on the task disables retries", () => {
    expect(effectivePolicy(base, { retry: false }).max).toBe(0);
  });

  it("the message's maxRetries wins over both", () => {
    expect(effectivePolicy(base, { retry: { max: 5 } }, 1).max).toBe(1);
    expect(effectivePolicy(base, { retry: false }, 2).max).toBe(2);
  });
});
