import { AsyncLocalStorage } from "node:async_hooks";
import type { Logger } from "pino";
import { QWorkerError } from "../errors.ts";

/** What a running task can see of itself. */
export interface TaskContext {
  id: string;
  name: string;
  queue: string;
  /** Retries already made (0 on the first attempt). */
  retries: number;
  /** Times the broker delivered this attempt (more than 1 after a crash or lease loss). */
  deliveries: number;
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** Aborted on soft time limit, revoke --terminate, lease loss and cold shutdown. */
  signal: AbortSignal;
  logger: Logger;
  /** Report progress, 0..1 with an optional note ("resizing"); shown by `inspect active` and `result`. */
  progress(fraction: number, note?: string): void;
  /** Ask for another attempt, like Celery's self.retry(): throws, so `throw ctx.retry(...)` reads well too. */
  retry(options?: { countdown?: number; error?: unknown }): never;
}

/** Thrown by ctx.retry(); the executor turns it into a scheduled retry with this countdown. */
export class RetryRequest extends QWorkerError {
  constructor(
    readonly countdownSec: number | undefined,
    readonly reason: unknown,
  ) {
    super("E_RETRY", reason instanceof Error ? reason.message : "retry requested");
  }
}

// One store per process even if two copies of qworker are loaded (the CLI from dist/ and task modules
// importing the package), so taskContext() always sees the running task.
const STORE_KEY = Symbol.for("qworker.taskContextStore");
const holder = globalThis as { [STORE_KEY]?: AsyncLocalStorage<TaskContext> };
const storage = (holder[STORE_KEY] ??= new AsyncLocalStorage<TaskContext>());

/**
 * The context of the task running in this async flow. Works from arrow functions and from code the task
 * calls, so handlers keep plain positional parameters.
 */
export function taskContext(): TaskContext {
  const ctx = storage.getStore();
  if (!ctx) throw new QWorkerError("E_NO_CONTEXT", "taskContext() called outside a running task");
  return ctx;
}

/** The running task's context in this async flow, if any (for code that must not throw without one). */
export function currentTaskContext(): TaskContext | undefined {
  return storage.getStore();
}

/** Call `fn(...args)` with `ctx` as the task context (extra arguments spare the caller a closure per task). */
export function runInContext<A extends unknown[], T>(ctx: TaskContext, fn: (...args: A) => T, ...args: A): T {
  return storage.run(ctx, fn, ...args);
}
