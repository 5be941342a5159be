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
  const kwargNames = Object.keys(msg.kwargs);
  if (kwargNames.length === 0) return msg.args;
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
 * Run one task in this process (the async pool). The soft limit aborts the task's signal; the hard limit
 * stops waiting for it and frees the slot, although code that never yields cannot be stopped in-process:
 * that is what the process pool is for.
 */
export async function executeInline(job: PoolJob): Promise<ExecOutcome> {
  const { def, msg, deliveries, controller, logger, limits } = job;
  const start = performance.now();
  const ctx: TaskContext = {
    id: msg.id,
    name: msg.task,
    queue: msg.queue,
    retries: msg.retries,
    deliveries,
    args: msg.args,
    kwargs: msg.kwargs,
    // A getter: the signal is created only for tasks that read it (LazyAbortController).
    get signal() {
      return controller.signal;
    },
    logger,
    progress: job.progress,
    retry(options) {
      throw new RetryRequest(options?.countdown, options?.error);
    },
  };
  let soft: NodeJS.Timeout | undefined;
  let hard: NodeJS.Timeout | undefined;
  try {
    const run = Promise.resolve().then(() => runInContext(ctx, () => def.handler.apply(ctx, handlerArgs(def, msg))));
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
    const runtimeMs = performance.now() - start;
    if (thrown instanceof RetryRequest) {
      return { kind: "retry", countdownSec: thrown.countdownSec, error: thrown.reason === undefined ? thrown : toError(thrown.reason), runtimeMs };
    }
    return { kind: "failure", error: toError(thrown), runtimeMs };
  } finally {
    if (soft) clearTimeout(soft);
    if (hard) clearTimeout(hard);
  }
}
