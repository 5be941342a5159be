import type { Logger } from "pino";
import type { TaskMessage } from "../protocol/message.ts";
import type { TaskDefinition } from "../tasks/definition.ts";
import { executeInline, executeInlineNow, type ExecLimits, type ExecOutcome } from "./executor.ts";

/** Where a task's code runs. The worker owns leases, retries and settling; a pool only runs the handler. */
export interface Pool {
  readonly kind: string;
  run(job: PoolJob): Promise<ExecOutcome>;
  /**
   * Optional callback form of run() for pools that can start the handler at once: `done` is called exactly
   * once, and a synchronous handler finishes without allocating a promise (the worker's hot path).
   */
  runNow?(job: PoolJob, done: (outcome: ExecOutcome) => void): void;
  close(): Promise<void>;
}

export interface PoolJob {
  def: TaskDefinition;
  msg: TaskMessage;
  deliveries: number;
  /** Aborted on soft time limit, revoke --terminate, lost lease and shutdown. */
  controller: AbortController;
  limits: ExecLimits;
  logger: Logger;
  /** Report progress (0..1) with an optional note; the worker publishes it. */
  progress: (fraction: number, note?: string) => void;
}

/** Runs tasks in the worker's own event loop: best for I/O-bound work, many at a time. */
export class AsyncPool implements Pool {
  readonly kind = "async";
  run(job: PoolJob): Promise<ExecOutcome> {
    return executeInline(job);
  }
  runNow(job: PoolJob, done: (outcome: ExecOutcome) => void): void {
    if (job.limits.timeLimitMs || job.limits.softTimeLimitMs) void executeInline(job).then(done);
    else executeInlineNow(job, done);
  }
  async close(): Promise<void> {}
}
