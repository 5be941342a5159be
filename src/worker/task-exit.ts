import type { Logger } from "pino";
import { currentTaskContext } from "../tasks/context.ts";

/**
 * A task in the async pool that calls process.exit() ends the whole worker, and nothing said why: the log
 * just stopped. Name the task before the exit goes ahead (it cannot be refused: code after it in the task
 * assumes the process is gone). Its tasks come back when their leases lapse, as after any crash.
 * Returns the function that removes the hook.
 */
export function reportTaskExits(logger: Logger, flush: () => void): () => void {
  const exit = process.exit;
  const hooked = ((code?: number | string | null) => {
    const ctx = currentTaskContext();
    if (ctx) {
      logger.error(
        `task ${ctx.name}[${ctx.id}] called process.exit(${code ?? ""}): the worker exits with it, and its tasks go back to the queue when their leases lapse (throw an error to fail the task instead)`,
      );
      flush();
    }
    return exit.call(process, code);
  }) as typeof process.exit;
  process.exit = hooked;
  return () => {
    if (process.exit === hooked) process.exit = exit;
  };
}
