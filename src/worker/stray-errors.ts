import type { Logger } from "pino";
import { toError } from "../errors.ts";
import { currentTaskContext, type TaskContext } from "../tasks/context.ts";
import { FAIL_FROM_OUTSIDE } from "./executor.ts";

type Failable = TaskContext & { [FAIL_FROM_OUTSIDE]?: (thrown: unknown) => boolean };

/**
 * Errors that reach the process instead of a task's own outcome: a throw in a timer or event callback the
 * task started, or a promise it left rejected. By Node's default either one ends the process, which in the
 * async pool took every other running task down with it, and the worker crashed again on each restart
 * while the task was redelivered, until every task it ran alongside had been dead-lettered too.
 *
 * Node runs those callbacks in the async context of the code that scheduled them, so the running task is
 * known: if it is still running it fails with that error (retried by its retry policy, like any failure);
 * if it has finished, the error is logged against it. Either way the worker carries on: the callback
 * that threw was the task's own code, not the worker's. An uncaught exception outside any task is the
 * worker's own bug, after which its state cannot be trusted: it is logged in one line and the process
 * exits with status 1 (its tasks' leases are recovered, as after a crash). An unhandled rejection outside
 * any task is logged and the worker goes on.
 *
 * Returns a function that removes the handlers.
 */
export function installStrayErrorGuard(logger: Logger, onFatal: () => void = () => process.exit(1)): () => void {
  const blame = (thrown: unknown, what: string): boolean => {
    const ctx = currentTaskContext() as Failable | undefined;
    if (!ctx) return false;
    const err = toError(thrown);
    const failed = ctx[FAIL_FROM_OUTSIDE]?.(thrown) ?? false;
    const outcome = failed ? "the task fails with it" : "the task had already finished";
    logger.error({ err, taskId: ctx.id, task: ctx.name }, `task ${ctx.name}[${ctx.id}] ${what}: ${err.message} (${outcome}; the worker goes on)`);
    return true;
  };
  const onException = (thrown: unknown): void => {
    if (blame(thrown, "threw from a callback outside its own call chain")) return;
    const err = toError(thrown);
    logger.fatal({ err }, `uncaught exception outside any task, stopping the worker (its tasks will be recovered): ${err.message}`);
    onFatal();
  };
  const onRejection = (reason: unknown): void => {
    if (blame(reason, "left a promise rejection unhandled")) return;
    const err = toError(reason);
    logger.error({ err }, `unhandled promise rejection outside any task (the worker goes on): ${err.message}`);
  };
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}
