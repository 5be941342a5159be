import type { RetryPolicy } from "../config/schema.ts";
import { defineTask, type TaskHandle } from "../tasks/define.ts";
import type { TaskHandler, TaskOptions } from "../tasks/definition.ts";

export interface CeleryTaskOptions extends Omit<TaskOptions, "name" | "retryOn"> {
  /** Error names retried automatically (Celery's `autoretry_for`); any other error fails at once. */
  autoretryFor?: string[];
  /** Celery's `max_retries` (default 3): how often `this.retry()` may reschedule. */
  maxRetries?: number;
  /** Celery's `default_retry_delay`, seconds (default 180): the delay of `this.retry()` without a countdown. */
  defaultRetryDelay?: number;
}

/**
 * A task with Celery's retry semantics, for tasks that Celery clients call: an exception is a FAILURE
 * right away (unless its name is in `autoretryFor`), `this.retry({ countdown })` reschedules up to
 * `maxRetries` times with a fixed delay. A plain `defineTask` keeps qworker's policy (retry every error
 * with backoff), which a Python caller would see as RETRY states before the final outcome.
 *
 *   export const add = defineCeleryTask("tasks.add", (a: number, b: number) => a + b);
 *   export const send = defineCeleryTask("billing.send_invoice", { params: ["invoiceId", "email"] }, handler);
 */
export function defineCeleryTask<A extends unknown[], R>(name: string, handler: TaskHandler<A, R>): TaskHandle<A, R>;
export function defineCeleryTask<A extends unknown[], R>(name: string, options: CeleryTaskOptions, handler: TaskHandler<A, R>): TaskHandle<A, R>;
export function defineCeleryTask<A extends unknown[], R>(
  name: string,
  second: CeleryTaskOptions | TaskHandler<A, R>,
  third?: TaskHandler<A, R>,
): TaskHandle<A, R> {
  const options: CeleryTaskOptions = typeof second === "function" ? {} : second;
  const handler = typeof second === "function" ? second : third;
  const { autoretryFor, maxRetries, defaultRetryDelay, retry, ...rest } = options;
  const policy: Partial<RetryPolicy> = {
    max: maxRetries ?? 3,
    countdown: defaultRetryDelay ?? 180,
    backoff: false,
    jitter: false,
    ...(retry === false ? { max: 0 } : retry),
  };
  const names = new Set(autoretryFor ?? []);
  const taskOptions: TaskOptions = { ...rest, name, retry: policy, retryOn: (err) => names.has(err.name) };
  // defineTask rejects a missing handler with a one-line error.
  return defineTask<A, R>(taskOptions, handler as TaskHandler<A, R>);
}
