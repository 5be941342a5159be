/**
 * Entry point of a process-pool child. It loads the tasks directory itself (so task modules run in this
 * process, not the worker's), then runs one task at a time on request and reports the outcome. Log lines
 * and progress go back to the worker over IPC. The child holds no lease and talks to no broker: if it
 * dies, the worker sees the exit and decides the task's fate.
 */
import pino from "pino";
import { discoverTasks } from "../../tasks/discovery.ts";
import type { TaskRegistry } from "../../tasks/registry.ts";
import { executeInline } from "../executor.ts";
import { installStrayErrorGuard } from "../stray-errors.ts";
import { reviveError, serializeError, serializeOutcome, type FromChild, type SerializedOutcome, type ToChild } from "./protocol.ts";

if (!process.send) {
  process.stderr.write("qworker: src/worker/pool/child is started by the process pool, not by hand\n");
  process.exit(2);
}

// The parent started us with tsx's loader when it runs from TypeScript sources; discovery must not
// register it a second time.
if (process.env.QWORKER_POOL_TSX === "1") (globalThis as Record<symbol, unknown>)[Symbol.for("qworker.tsxRegistered")] = true;

let registry: TaskRegistry | undefined;
let currentJob: number | undefined;
const controllers = new Map<number, AbortController>();

function send(m: FromChild): void {
  // The channel is gone when the worker died or is closing us: nothing left to tell.
  if (process.connected) process.send!(m, undefined, undefined, () => {});
}

function makeLogger(level: string) {
  return pino(
    { level, base: undefined },
    { write: (line: string) => send({ type: "log", jobId: currentJob, line }) },
  );
}
let logger = makeLogger("info");

async function onMessage(m: ToChild): Promise<void> {
  switch (m.type) {
    case "init": {
      logger = makeLogger(m.loglevel);
      // As in the async pool: an error escaping the running task fails it with that error. Left to Node's
      // default it ended the child, and the task was recorded as WorkerLostError with its real error only
      // in the logs.
      installStrayErrorGuard(logger);
      try {
        registry = (await discoverTasks(m.tasksDir)).registry;
        send({ type: "ready" });
      } catch (err) {
        // Exit once the message is out, so the worker reads why before it sees the exit.
        process.send!({ type: "fatal", message: (err as Error).message } satisfies FromChild, undefined, undefined, () => process.exit(1));
      }
      return;
    }
    case "run": {
      const def = registry?.get(m.msg.task);
      const controller = new AbortController();
      controllers.set(m.jobId, controller);
      currentJob = m.jobId;
      let outcome: SerializedOutcome;
      if (!def) {
        outcome = { kind: "failure", error: { name: "NotRegisteredError", message: `task "${m.msg.task}" is not registered in the pool child`, code: "E_NOT_REGISTERED" }, runtimeMs: 0 };
      } else {
        const result = await executeInline({
          def,
          msg: m.msg,
          deliveries: m.deliveries,
          controller,
          logger,
          limits: m.softTimeLimitMs ? { softTimeLimitMs: m.softTimeLimitMs } : {},
          progress: (fraction, note) => send({ type: "progress", jobId: m.jobId, fraction, ...(note !== undefined ? { note } : {}) }),
        });
        outcome = serializeOutcome(result);
      }
      controllers.delete(m.jobId);
      currentJob = undefined;
      const rssBytes = process.memoryUsage.rss();
      try {
        process.send!({ type: "done", jobId: m.jobId, outcome, rssBytes } satisfies FromChild);
      } catch (err) {
        // A value structured clone cannot copy (a function, a socket): report that instead of the value.
        const error = serializeError(new Error(`the task's return value cannot be sent to the worker: ${(err as Error).message}`));
        send({ type: "done", jobId: m.jobId, outcome: { kind: "failure", error, runtimeMs: outcome.runtimeMs }, rssBytes });
      }
      return;
    }
    case "abort":
      controllers.get(m.jobId)?.abort(reviveError(m.reason));
      return;
  }
}

process.on("message", (m: ToChild) => void onMessage(m));
// The worker ends a child by closing the channel (or, for a task past its time, SIGKILL). Losing the
// channel also means the worker is gone: stop even if a task is still running.
process.on("disconnect", () => process.exit(0));
// Ctrl-C, `timeout` and systemd signal the whole process group: the worker decides when its children
// stop (after a warm shutdown lets running tasks finish), so the signals meant for it are ignored here.
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => {});
