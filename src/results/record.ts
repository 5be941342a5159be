import { z } from "zod";
import { MessageError } from "../errors.ts";
import { excessiveNesting } from "../protocol/json-depth.ts";

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
  // Strings whatever the error set them to: decodeResult refuses a record whose error fields are not.
  return {
    type: typeof err.name === "string" && err.name !== "" ? err.name : "Error",
    message: typeof err.message === "string" ? err.message : String(err.message),
    ...(typeof err.stack === "string" && err.stack !== "" ? { stack: err.stack } : {}),
    ...(typeof code === "string" ? { code } : {}),
  };
}

export function encodeResult(r: TaskResult): string {
  return JSON.stringify(r);
}

const TASK_STATES = ["PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "EXPIRED"] as const satisfies readonly TaskState[];

/**
 * What a stored record must be for a reader to use it. Loose: a newer worker may add fields. Built on first
 * use: a worker imports this module to encode results and never decodes one, and each zod schema built at
 * import costs a process about 1 MB of RSS (zod's construction code compiled).
 */
const makeTaskResultSchema = () => {
  const time = z.number().optional();
  return z.looseObject({
    id: z.string(),
    state: z.enum(TASK_STATES),
    task: z.string().optional(),
    queue: z.string().optional(),
    result: z.unknown().optional(),
    error: z
      .looseObject({ type: z.string(), message: z.string(), stack: z.string().optional(), code: z.string().optional() })
      .optional(),
    retries: z.number().optional(),
    argsPreview: z.string().optional(),
    worker: z.string().optional(),
    sentAt: time,
    startedAt: time,
    finishedAt: time,
    runtimeMs: time,
  });
};
let taskResultSchema: ReturnType<typeof makeTaskResultSchema> | undefined;

/**
 * Read a stored record (TaskRef.get/state, `qworker result`). Throws MessageError, one line, when the
 * stored text is not a record (not JSON, another shape, nested deeper than a reader can print): it was
 * a raw SyntaxError or TypeError from inside the client.
 */
export function decodeResult(raw: string): TaskResult {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (err) {
    throw new MessageError(`stored result is not valid JSON (${(err as Error).message})`);
  }
  const deep = excessiveNesting(data, raw);
  if (deep !== undefined) throw new MessageError(`stored result ${deep}`);
  const parsed = (taskResultSchema ??= makeTaskResultSchema()).safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join(".") : "record";
    throw new MessageError(`stored result is not a task result: ${where}: ${issue?.message ?? "invalid"}`);
  }
  const r = parsed.data as TaskResult;
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
