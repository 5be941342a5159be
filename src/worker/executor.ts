import { SoftTimeLimitExceeded, TimeLimitExceeded, toError } from "../errors.ts";
import type { TaskMessage } from "../protocol/message.ts";
import { RetryRequest, runInContext, type TaskContext } from "../tasks/context.ts";
import type { TaskDefinition } from "../tasks/definition.ts";
import type { PoolJob } from "./pool.ts";

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
 * What a handler sees as `this` and through taskContext(). A class rather than an object literal with a
 * getter and closures: one of these is made per task, and the methods live once on the prototype.
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
  private readonly controller: AbortController;

  constructor(job: PoolJob) {
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
  }

  // A getter: the signal is created only for tasks that read it (LazyAbortController).
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  retry(options?: { countdown?: number; error?: unknown }): never {
    throw new RetryRequest(options?.countdown, options?.error);
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

/**
 * The hot path of the async pool for a task without time limits: the handler is called at once and a
 * synchronous handler completes without a single promise; an async one costs the one `then` it needs.
 * `done` is called exactly once. (executeInline below is the general form, with time limits.)
 */
export function executeInlineNow(job: PoolJob, done: (outcome: ExecOutcome) => void): void {
  const start = performance.now();
  const ctx = new InlineContext(job);
  let value: unknown;
  try {
    value = runInContext(ctx, callHandler, job.def, ctx, handlerArgs(job.def, job.msg));
  } catch (thrown) {
    done(failed(thrown, start));
    return;
  }
  if (!isThenable(value)) {
    done({ kind: "success", value, runtimeMs: performance.now() - start });
    return;
  }
  value.then(
    (v) => done({ kind: "success", value: v, runtimeMs: performance.now() - start }),
    (thrown: unknown) => done(failed(thrown, start)),
  );
}

/**
 * Run one task in this process (the async pool). The soft limit aborts the task's signal; the hard limit
 * stops waiting for it and frees the slot, although code that never yields cannot be stopped in-process:
 * that is what the process pool is for.
 */
export async function executeInline(job: PoolJob): Promise<ExecOutcome> {
  const { def, msg, controller, limits } = job;
  if (!limits.softTimeLimitMs && !limits.timeLimitMs) return new Promise((resolve) => executeInlineNow(job, resolve));
  const start = performance.now();
  const ctx = new InlineContext(job);
  let soft: NodeJS.Timeout | undefined;
  let hard: NodeJS.Timeout | undefined;
  try {
    const run = Promise.resolve().then(() => runInContext(ctx, callHandler, def, ctx, handlerArgs(def, msg)));
    const races: Promise<unknown>[] = [run];
    if (limits.softTimeLimitMs) {
      const ms = limits.softTimeLimitMs;
      soft = setTimeout(() => controller.abort(new SoftTimeLimitExceeded(ms)), ms);
    }
    if (limits.timeLimitMs) {
      const ms = limits.timeLimitMs;
      races.push(
        new Promise((_, reject) => {
          hard = setTimeout(() => {
            const err = new TimeLimitExceeded(ms);
            controller.abort(err);
            reject(err);
          }, ms);
        }),
      );
    }
    const value = races.length === 1 ? await run : await Promise.race(races);
    return { kind: "success", value, runtimeMs: performance.now() - start };
  } catch (thrown) {
    return failed(thrown, start);
  } finally {
    if (soft) clearTimeout(soft);
    if (hard) clearTimeout(hard);
  }
}
