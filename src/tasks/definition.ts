import type { RetryPolicy } from "../config/schema.ts";
import type { TaskContext } from "./context.ts";

export interface TaskOptions {
  /** Dotted name senders use, e.g. "shop.send_invoice_email". Derived from file and export if omitted. */
  name?: string;
  queue?: string;
  priority?: number;
  /** Overrides of the default retry policy (config `retry`); `false` disables retries. */
  retry?: Partial<RetryPolicy> | false;
  /** Only errors for which this returns true are retried (default: all but NonRetryableError). */
  retryOn?: (err: Error) => boolean;
  /** Hard time limit, seconds. */
  timeLimit?: number;
  /** Soft time limit, seconds: the AbortSignal fires and the task may clean up. */
  softTimeLimit?: number;
  /** Parameter names, so Celery-style kwargs map onto positional parameters. */
  params?: string[];
  /** Store no result for this task. */
  ignoreResult?: boolean;
  /**
   * Arguments never shown in results, events or logs of qworker: `true` for all of them, or positions
   * and keyword names, e.g. `[1, "password"]`.
   */
  secretArgs?: true | (number | string)[];
  /** Global rate limit, e.g. "100/m" (enforced across workers). */
  rateLimit?: string;
}

export type TaskHandler<A extends unknown[], R> = (this: TaskContext, ...args: A) => R | Promise<R>;

export const TASK_BRAND: unique symbol = Symbol.for("qworker.task");

export interface TaskDefinition<A extends unknown[] = unknown[], R = unknown> {
  readonly [TASK_BRAND]: true;
  /** Set at definition, or by discovery from file and export name. */
  name: string | undefined;
  readonly options: TaskOptions;
  readonly handler: TaskHandler<A, R>;
}

export function isTaskDefinition(value: unknown): value is TaskDefinition {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[TASK_BRAND] === true;
}
