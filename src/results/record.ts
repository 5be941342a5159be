/**
 * What qworker stores as a task's result (key `r:<id>` on Redis, the results table on SQLite), with a TTL.
 * States follow Celery's names so people coming from it read them without a glossary.
 */
export type TaskState = "PENDING" | "RECEIVED" | "STARTED" | "RETRY" | "SUCCESS" | "FAILURE" | "REVOKED" | "EXPIRED";

export interface TaskErrorInfo {
  /** The error's `name` (e.g. "TypeError", "ValueError"). */
  type: string;
  message: string;
  stack?: string;
  code?: string;
}

export interface TaskResult {
  id: string;
  state: TaskState;
  task?: string;
  queue?: string;
  result?: unknown;
  error?: TaskErrorInfo;
  retries?: number;
  /** The arguments as capped JSON, with secret ones masked (see TaskOptions.secretArgs). */
  argsPreview?: string;
  worker?: string;
  sentAt?: number;
  startedAt?: number;
  finishedAt?: number;
  runtimeMs?: number;
}

export function errorInfo(err: Error): TaskErrorInfo {
  const code = (err as Error & { code?: unknown }).code;
  return {
    type: err.name || "Error",
    message: err.message,
    ...(err.stack ? { stack: err.stack } : {}),
    ...(typeof code === "string" ? { code } : {}),
  };
}

export function encodeResult(r: TaskResult): string {
  return JSON.stringify(r);
}

export function decodeResult(raw: string): TaskResult {
  const r = JSON.parse(raw) as TaskResult;
  // A record stored before workers rounded it (or by another writer) reads as the events report it.
  if (typeof r.runtimeMs === "number") r.runtimeMs = roundRuntimeMs(r.runtimeMs);
  return r;
}

/**
 * A handler's run time as qworker reports it everywhere (task events, result records, `result --json`):
 * to 0.1 ms. performance.now() differences carry noise digits no reader needs (0.04809999999999945).
 */
export function roundRuntimeMs(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Rebuild a throwable Error from a stored failure, keeping the task's error name, message and stack. */
export function errorFromInfo(info: TaskErrorInfo): Error {
  const err = new Error(info.message);
  err.name = info.type;
  if (info.stack) err.stack = info.stack;
  if (info.code) (err as Error & { code?: string }).code = info.code;
  return err;
}
