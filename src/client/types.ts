import type { TaskResult } from "../results/record.ts";

export interface SendOptions {
  kwargs?: Record<string, unknown>;
  queue?: string;
  /** Run no earlier than this many seconds from now. */
  countdown?: number;
  /** Run no earlier than this time: a Date, an ISO-8601 string, or epoch milliseconds (`Date.now() + 60_000`). */
  eta?: Date | string | number;
  /** 0..9, higher runs first. */
  priority?: number;
  /** Discard the task if it has not started by then: seconds from now (a number), or a Date or ISO-8601 string. */
  expires?: number | Date | string;
  /** Hard and soft time limits, seconds (override the task's). */
  timeLimit?: number;
  softTimeLimit?: number;
  maxRetries?: number;
  /** While a task with this key is queued or running, sending again returns its id. */
  uniqueKey?: string;
  /** Hold the unique key at most this many seconds (needs uniqueKey); unset or 0: until the task ends. */
  uniqueFor?: number;
  ignoreResult?: boolean;
  /** Use this id instead of a new UUID. */
  id?: string;
}

/** One task of a `sendMany` call. */
export interface TaskCall {
  task: string;
  args?: unknown[];
  options?: SendOptions;
}

export interface TaskRef<R = unknown> {
  readonly id: string;
  /** True when a unique key returned an earlier task instead of sending a new one. */
  readonly duplicate: boolean;
  /**
   * Wait for the outcome: resolves with the value, rejects with the task's error (name, message, stack).
   * `timeout` in seconds (default 3600; Infinity waits as long as it takes): ResultTimeoutError after it,
   * BrokerError (E_BROKER) if the client is closed meanwhile.
   */
  get(options?: { timeout?: number }): Promise<R>;
  /** The stored state, or null while none is stored (pending or running). */
  state(): Promise<TaskResult | null>;
}
