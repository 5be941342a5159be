import { UsageError } from "../errors.ts";
import { MAX_TIMER_MS } from "../tasks/time-limits.ts";

/**
 * The deadline of a caller's wait for a result. A Node timer waits at most 2^31 - 1 ms (about 24.8
 * days) and, asked for more, fires after 1 ms: a `get({ timeout: Infinity })` would give up at once.
 * Longer waits chain timers; an infinite one sets none. Returns the function that cancels it.
 */
export function startWaitDeadline(ms: number, onExpire: () => void): () => void {
  if (ms === Infinity) return () => {};
  const end = Date.now() + ms;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = end - Date.now();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(onExpire, Math.max(0, left));
  };
  arm();
  return () => clearTimeout(timer);
}

/**
 * A result wait's timeout, given in seconds by an app, as milliseconds. NaN or a negative number would
 * otherwise wait forever on one broker and not at all on the other; Infinity waits for as long as it takes.
 */
export function waitTimeoutMs(seconds: unknown): number {
  if (typeof seconds !== "number" || Number.isNaN(seconds) || seconds < 0) {
    throw new UsageError(`timeout must be a number of seconds >= 0 (Infinity to wait as long as it takes), found ${typeof seconds === "number" ? String(seconds) : (JSON.stringify(seconds) ?? String(seconds))}`);
  }
  return seconds * 1000;
}
