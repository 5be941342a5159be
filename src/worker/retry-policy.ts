import type { RetryPolicy } from "../config/schema.ts";
import { NonRetryableError } from "../errors.ts";
import type { TaskOptions } from "../tasks/definition.ts";

export interface RetryDecision {
  retry: boolean;
  /** Delay before the next attempt, seconds. */
  delaySec: number;
  /** Retries allowed in all. */
  max: number;
}

/** Merge the task's policy over the configured default. `retry: false` on the task means none. */
export function effectivePolicy(defaults: RetryPolicy, task: TaskOptions, messageMax?: number): RetryPolicy {
  const merged: RetryPolicy = task.retry === false ? { ...defaults, max: 0 } : { ...defaults, ...task.retry };
  return messageMax === undefined ? merged : { ...merged, max: messageMax };
}

/**
 * Should a failed attempt be retried, and after how long? Exponential backoff doubles the countdown per
 * retry up to backoff_max; jitter picks uniformly in [delay/2, delay] so a burst of failures does not
 * come back as a burst. `random` is injectable for tests.
 */
export function decideRetry(
  policy: RetryPolicy,
  retriesSoFar: number,
  err: Error,
  retryOn?: (err: Error) => boolean,
  random: () => number = Math.random,
): RetryDecision {
  const max = policy.max;
  const allowed = !isNonRetryable(err) && (retryOn ? retryOn(err) : true);
  if (!allowed || retriesSoFar >= max) return { retry: false, delaySec: 0, max };
  return { retry: true, delaySec: backoffDelay(policy, retriesSoFar, random), max };
}

/**
 * By its code as well as its class: a task module that imports another copy of qworker (a global CLI with
 * a local library, or src/ beside an older dist/) throws a NonRetryableError of that copy's class.
 */
function isNonRetryable(err: Error): boolean {
  return err instanceof NonRetryableError || (err as { code?: unknown }).code === "E_NON_RETRYABLE";
}

export function backoffDelay(policy: RetryPolicy, retriesSoFar: number, random: () => number = Math.random): number {
  let delay = policy.backoff ? policy.countdown * 2 ** retriesSoFar : policy.countdown;
  delay = Math.min(delay, policy.backoff_max);
  if (policy.jitter) delay = delay / 2 + (random() * delay) / 2;
  return delay;
}
