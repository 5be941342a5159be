import { QWorkerError } from "../errors.ts";
import { checkTaskOptions } from "./options.ts";
import type { SendOptions, TaskRef } from "../client/types.ts";
import { TASK_BRAND, type TaskDefinition, type TaskHandler, type TaskOptions } from "./definition.ts";

export interface TaskHandle<A extends unknown[], R> extends TaskDefinition<A, R> {
  /** Send with positional arguments, like Celery's `task.delay(...)`. */
  delay(...args: A): Promise<TaskRef<Awaited<R>>>;
  /** Send with options (countdown, eta, queue, priority, kwargs, …), like Celery's `apply_async`. */
  applyAsync(args: A, options?: SendOptions): Promise<TaskRef<Awaited<R>>>;
}

/**
 * Define a task. `defineTask("shop.send_invoice_email", async (orderId: number) => …)` or
 * `defineTask({ name, queue, retry, timeLimit, … }, handler)`. Positional arguments arrive as the
 * handler's parameters; its context is `this` (for `function` handlers) or `taskContext()`.
 */
export function defineTask<A extends unknown[], R>(name: string, handler: TaskHandler<A, R>): TaskHandle<A, R>;
export function defineTask<A extends unknown[], R>(options: TaskOptions, handler: TaskHandler<A, R>): TaskHandle<A, R>;
export function defineTask<A extends unknown[], R>(handler: TaskHandler<A, R>): TaskHandle<A, R>;
export function defineTask<A extends unknown[], R>(
  first: string | TaskOptions | TaskHandler<A, R>,
  second?: TaskHandler<A, R>,
): TaskHandle<A, R> {
  const handler = typeof first === "function" ? first : second;
  if (typeof handler !== "function") {
    throw new QWorkerError("E_TASK_DEFINITION", "defineTask needs a handler function as its last argument");
  }
  const options = checkTaskOptions(typeof first === "string" ? { name: first } : typeof first === "object" && first !== null ? { ...first } : {});
  const handle: TaskHandle<A, R> = {
    [TASK_BRAND]: true,
    name: options.name,
    options,
    handler,
    async applyAsync(args: A, sendOptions?: SendOptions) {
      const { definitionSend } = await import("../client/client.ts");
      // Refused before the default client opens a broker connection.
      definitionSend(handle, sendOptions ?? {});
      const { defaultClient } = await import("../client/default.ts");
      const client = await defaultClient();
      return client.send(handle, args, sendOptions);
    },
    delay(...args: A) {
      return handle.applyAsync(args);
    },
  };
  return handle;
}
