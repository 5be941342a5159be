import { SoftTimeLimitExceeded, TimeLimitExceeded, toError } from "../errors.ts";
import type { TaskMessage } from "../protocol/message.ts";
import { RetryRequest, runInContext, type TaskContext } from "../tasks/context.ts";
import type { TaskDefinition } from "../tasks/definition.ts";
import type { PoolJob } from "./pool.ts";
import { timerMs } from "../tasks/time-limits.ts";

export type ExecOutcome =
  | { kind: "success"; value: unknown; runtimeMs: number }
  | { kind: "failure"; error: Error; runtimeMs: number }
  | { kind: "retry"; countdownSec: number | undefined; error: Error; runtimeMs: number };

export interface ExecLimits {
  timeLimitMs?: number;
  softTimeLimitMs?: number;
}

/** Build the positional arguments: Celery-style kwargs map onto `params` names, else ride along last. */
export function handlerArgs(def: TaskDefinition, msg: TaskMessage): unknown[] {
  let anyKwargs = false;
  for (const _ in msg.kwargs) {
    anyKwargs = true;
    break;
  }
  if (!anyKwargs) return msg.args;
  const params = def.options.params;
  if (!params) return [...msg.args, msg.kwargs];
  const args = [...msg.args];
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(msg.kwargs)) {
    const at = params.indexOf(k);
    if (at >= 0) {
      while (args.length < at) args.push(undefined);
      args[at] = v;
    } else rest[k] = v;
  }
  if (Object.keys(rest).length > 0) args.push(rest);
  return args;
}

/**
 * A running task's hook for an error that reaches the process from code the task started but does not
 * await (a throw in its timer callback, a promise it left rejected): called with that error while the task
 * is the current async context, it fails the task and returns true, or returns false once the task has
 * finished. A symbol from the global registry, so a second copy of qworker in the process (the CLI from
 * dist/, task modules importing the package) finds it too.
 */
export const FAIL_FROM_OUTSIDE = Symbol.for("qworker.failFromOutside");

/**
 * What a handler sees as `this` and through taskContext(). A class rather than an object literal with a
 * getter and closures: one of these is made per task, and the methods live once on the prototype. It also
 * holds the task's completion, so that whichever comes first (the handler's own outcome, the hard time
 * limit, an error from outside the handler's call chain) settles the task, once.
 */
class InlineContext implements TaskContext {
  readonly id: string;
  readonly name: string;
  readonly queue: string;
  readonly retries: number;
  readonly deliveries: number;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown>;
  readonly logger: PoolJob["logger"];
  readonly progress: PoolJob["progress"];
  readonly start: number;
  private readonly controller: AbortController;
  private done: ((outcome: ExecOutcome) => void) | undefined;

  constructor(job: PoolJob, done: (outcome: ExecOutcome) => void) {
    const msg = job.msg;
    this.id = msg.id;
    this.name = msg.task;
    this.queue = msg.queue;
    this.retries = msg.retries;
    this.deliveries = job.deliveries;
    this.args = msg.args;
    this.kwargs = msg.kwargs;
    this.logger = job.logger;
    this.progress = job.progress;
    this.controller = job.controller;
    this.done = done;
    this.start = performance.now();
  }

  // A getter: the signal is created only for tasks that read it (LazyAbortController).
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  retry(options?: { countdown?: number; error?: unknown }): never {
    throw new RetryRequest(options?.countdown, options?.error);
  }

  finish(outcome: ExecOutcome): void {
    const done = this.done;
    if (!done) return;
    this.done = undefined;
    done(outcome);
  }

  succeed(value: unknown): void {
    this.finish({ kind: "success", value, runtimeMs: performance.now() - this.start });
  }

  fail(thrown: unknown): void {
    this.finish(failed(thrown, this.start));
  }

  [FAIL_FROM_OUTSIDE](thrown: unknown): boolean {
    if (!this.done) return false;
    // Whatever the handler still does is told to stop, as at a hard time limit.
    this.controller.abort(toError(thrown));
    this.fail(thrown);
    return true;
  }
}

function callHandler(def: TaskDefinition, ctx: TaskContext, args: unknown[]): unknown {
  return def.handler.apply(ctx, args as never);
}

function failed(thrown: unknown, start: number): ExecOutcome {
  const runtimeMs = performance.now() - start;
  if (thrown instanceof RetryRequest) {
    return { kind: "retry", countdownSec: thrown.countdownSec, error: thrown.reason === undefined ? thrown : toError(thrown.reason), runtimeMs };
  }
  return { kind: "failure", error: toError(thrown), runtimeMs };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as { then?: unknown }).then === "function";
}

/** Call the handler; its outcome (or a throw) finishes `ctx` unless something else finished it first. */
function startHandler(ctx: InlineContext, job: PoolJob): void {
  let value: unknown;
  try {
    value = runInContext(ctx, callHandler, job.def, ctx, handlerArgs(job.def, job.msg));
  } catch (thrown) {
    ctx.fail(thrown);
    return;
  }
  if (!isThenable(value)) {
    ctx.succeed(value);
    return;
  }
  value.then(
    (v) => ctx.succeed(v),
    (thrown: unknown) => ctx.fail(thrown),
  );
}

/**
 * The hot path of the async pool for a task without time limits: the handler is called at once and a
 * synchronous handler completes without a single promise; an async one costs the one `then` it needs.
 * `done` is called exactly once. (executeInline below is the general form, with time limits.)
 */
export function executeInlineNow(job: PoolJob, done: (outcome: ExecOutcome) => void): void {
  startHandler(new InlineContext(job, done), job);
}

/**
 * Run one task in this process (the async pool). The soft limit aborts the task's signal; the hard limit
 * stops waiting for it and frees the slot, although code that never yields cannot be stopped in-process:
 * that is what the process pool is for.
 */
export function executeInline(job: PoolJob): Promise<ExecOutcome> {
  const { controller, limits } = job;
  return new Promise((resolve) => {
    let soft: NodeJS.Timeout | undefined;
    let hard: NodeJS.Timeout | undefined;
    const ctx = new InlineContext(job, (outcome) => {
      clearTimeout(soft);
      clearTimeout(hard);
      const limit = limits.timeLimitMs;
      if (limit && outcome.runtimeMs > limit && !(outcome.kind === "failure" && outcome.error instanceof TimeLimitExceeded)) {
        // Its outcome stands (its work is done), but nobody should believe the limit held.
        job.logger.warn(
          `task ${job.msg.task}[${job.msg.id}] returned after ${(outcome.runtimeMs / 1000).toFixed(1)} s, past its hard time limit of ${limit / 1000} s: it did not yield to the event loop, so the async pool could not stop it (run such tasks with pool: process)`,
        );
      }
      resolve(outcome);
    });
    if (limits.softTimeLimitMs) {
      const ms = limits.softTimeLimitMs;
      soft = setTimeout(() => controller.abort(new SoftTimeLimitExceeded(ms)), timerMs(ms));
    }
    if (limits.timeLimitMs) {
      const ms = limits.timeLimitMs;
      hard = setTimeout(() => {
        const err = new TimeLimitExceeded(ms);
        controller.abort(err);
        ctx.fail(err);
        // A message from outside (Celery, an older client) may carry a limit longer than a timer can wait.
      }, timerMs(ms));
    }
    startHandler(ctx, job);
  });
}
