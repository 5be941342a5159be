import type { Logger } from "pino";
import type { TaskMessage } from "../protocol/message.ts";
import type { TaskDefinition } from "../tasks/definition.ts";
import { executeInline, type ExecLimits, type ExecOutcome } from "./executor.ts";

/** Where a task's code runs. The worker owns leases, retries and settling; a pool only runs the handler. */
export interface Pool {
  readonly kind: string;
  run(job: PoolJob): Promise<ExecOutcome>;
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
  async close(): Promise<void> {}
}
