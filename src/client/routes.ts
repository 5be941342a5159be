/**
 * `task_routes`: the queue a task sent by name goes to when the sender names none, as Celery's task_routes
 * routes `send_task`. A sender that has only a task's name (the CLI, another service) cannot see the
 * `queue` its definition declares, so without a route such a task lands in default_queue, where a worker
 * that consumes only the task's own queue never finds it.
 *
 * Keys are task names or glob patterns (`reports.*`; `*` matches any run of characters). An exact name
 * wins; otherwise the first pattern in the order written.
 */
export type TaskRoutes = Record<string, string>;

export function compileRoutes(routes: TaskRoutes): (task: string) => string | undefined {
  const exact = new Map<string, string>();
  const globs: { re: RegExp; queue: string }[] = [];
  for (const [pattern, queue] of Object.entries(routes)) {
    if (!pattern.includes("*")) exact.set(pattern, queue);
    else globs.push({ re: new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`), queue });
  }
  if (exact.size === 0 && globs.length === 0) return () => undefined;
  return (task) => exact.get(task) ?? globs.find((g) => g.re.test(task))?.queue;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
}
