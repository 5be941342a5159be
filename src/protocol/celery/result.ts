import { z } from "zod";
import { MessageError, QWorkerError } from "../../errors.ts";
import { excessiveNesting } from "../json-depth.ts";
import { formatNaiveUtc, parseIsoDateTime } from "./time.ts";

/**
 * Celery's Redis result format: the JSON stored at `celery-task-meta-<id>` (SETEX) and PUBLISHed on the
 * channel of the same name, as written by `celery.backends.base.KeyValueStoreBackend._store_result`.
 * Exceptions use the JSON serializer's form `{exc_type, exc_message: [args...], exc_module}`, which a
 * Python client turns back into an exception instance (`Backend.exception_to_python`).
 */

export const CeleryState = {
  PENDING: "PENDING",
  RECEIVED: "RECEIVED",
  STARTED: "STARTED",
  SUCCESS: "SUCCESS",
  FAILURE: "FAILURE",
  REVOKED: "REVOKED",
  RETRY: "RETRY",
} as const;
export type CeleryStateName = (typeof CeleryState)[keyof typeof CeleryState];

/** States after which `AsyncResult.get()` stops waiting. */
export const READY_STATES: ReadonlySet<string> = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
/** States whose `result` is an exception object. */
export const EXCEPTION_STATES: ReadonlySet<string> = new Set(["FAILURE", "RETRY", "REVOKED"]);

/** The serialized exception, exactly the three keys Celery writes. */
export interface CeleryExceptionInfo {
  exc_type: string;
  exc_message: unknown[];
  exc_module: string;
}

// ---------------------------------------------------------------------------------------------------
// JS error → Python exception
// ---------------------------------------------------------------------------------------------------

/**
 * Python built-in exceptions a JS error may be reported as when its `name` is exactly one of these
 * (e.g. `Object.assign(new Error("bad"), { name: "ValueError" })`). Only subclasses of `Exception` whose
 * constructor accepts any arguments are listed, so the Python client can always rebuild them; excluded on
 * purpose: BaseException-only classes (SystemExit, KeyboardInterrupt, GeneratorExit), StopIteration,
 * Unicode*Error (need 4–5 positional args) and ExceptionGroup (needs a list).
 */
export const PYTHON_BUILTIN_EXCEPTIONS: ReadonlySet<string> = new Set([
  "Exception", "ArithmeticError", "AssertionError", "AttributeError", "BufferError", "EOFError",
  "FloatingPointError", "ImportError", "ModuleNotFoundError", "IndexError", "KeyError", "LookupError",
  "MemoryError", "NameError", "NotImplementedError", "OSError", "OverflowError", "RecursionError",
  "ReferenceError", "RuntimeError", "SyntaxError", "IndentationError", "TabError", "SystemError",
  "TypeError", "UnboundLocalError", "UnicodeError", "ValueError", "ZeroDivisionError",
  "BlockingIOError", "ChildProcessError", "ConnectionError", "BrokenPipeError", "ConnectionAbortedError",
  "ConnectionRefusedError", "ConnectionResetError", "FileExistsError", "FileNotFoundError",
  "InterruptedError", "IsADirectoryError", "NotADirectoryError", "PermissionError", "ProcessLookupError",
  "TimeoutError", "EnvironmentError", "IOError",
]);

/**
 * JS error names that are translated rather than passed through. `name` (checked before this table)
 * wins when it is already a Python built-in, so `TypeError`, `SyntaxError` and `TimeoutError` map to
 * themselves without an entry; `ReferenceError` is in both languages but means "undefined variable" in
 * JS, which Python calls NameError, so it is listed here and this table is consulted first.
 */
export const JS_TO_PYTHON_EXCEPTION: Readonly<Record<string, { module: string; type: string }>> = {
  Error: { module: "builtins", type: "Exception" },
  TypeError: { module: "builtins", type: "TypeError" },
  RangeError: { module: "builtins", type: "ValueError" },
  SyntaxError: { module: "builtins", type: "SyntaxError" },
  ReferenceError: { module: "builtins", type: "NameError" },
  EvalError: { module: "builtins", type: "RuntimeError" },
  URIError: { module: "builtins", type: "ValueError" },
  AggregateError: { module: "builtins", type: "Exception" },
  AbortError: { module: "builtins", type: "Exception" },
  // qworker's own errors that have a Celery counterpart (celery.exceptions re-exports billiard's).
  NotRegisteredError: { module: "celery.exceptions", type: "NotRegistered" },
  SoftTimeLimitExceeded: { module: "celery.exceptions", type: "SoftTimeLimitExceeded" },
  TimeLimitExceeded: { module: "celery.exceptions", type: "TimeLimitExceeded" },
};

/**
 * Module name used for any other error name. No such Python module exists, so a Celery client builds a
 * stand-in class `celery.exceptions.<name>` (an Exception subclass) and the JS name stays visible as the
 * Python type name.
 */
export const FOREIGN_EXCEPTION_MODULE = "qworker.errors";

function pythonIdentifier(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(\d)/, "_$1");
  return cleaned.length > 0 ? cleaned : "Error";
}

/** Where a JS error's exc_type/exc_module come from; see JS_TO_PYTHON_EXCEPTION for the table. */
export function pythonExceptionFor(name: string): { module: string; type: string } {
  const mapped = JS_TO_PYTHON_EXCEPTION[name];
  if (mapped) return mapped;
  if (PYTHON_BUILTIN_EXCEPTIONS.has(name)) return { module: "builtins", type: name };
  return { module: FOREIGN_EXCEPTION_MODULE, type: pythonIdentifier(name) };
}

/** The JSON-safe argument list of an error: its `args` when it came from Python, else `[message]`. */
function exceptionArgs(err: Error): unknown[] {
  const carried = (err as { args?: unknown }).args;
  if (Array.isArray(carried)) {
    try {
      return JSON.parse(JSON.stringify(carried)) as unknown[];
    } catch {
      /* fall through to the message */
    }
  }
  return err.message === "" ? [] : [err.message];
}

/**
 * Serialize anything a task threw the way Celery's JSON serializer stores an exception. A
 * CeleryTaskError (an error decoded from a Celery result) keeps its original Python type and module.
 */
export function toCeleryException(thrown: unknown): CeleryExceptionInfo {
  if (thrown instanceof CeleryTaskError) {
    return { exc_type: thrown.excType, exc_message: [...thrown.args], exc_module: thrown.excModule };
  }
  const err = thrown instanceof Error ? thrown : new Error(typeof thrown === "string" ? thrown : safeJson(thrown));
  const name = typeof err.name === "string" && err.name.length > 0 ? err.name : "Error";
  const { module, type } = pythonExceptionFor(name);
  return { exc_type: type, exc_message: exceptionArgs(err), exc_module: module };
}

/** The traceback text stored beside a failure: the JS stack, which starts with the JS name and message. */
export function tracebackFor(thrown: unknown): string | null {
  if (thrown instanceof CeleryTaskError) return thrown.traceback ?? null;
  if (thrown instanceof Error) return thrown.stack ?? `${thrown.name}: ${thrown.message}`;
  return null;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

// ---------------------------------------------------------------------------------------------------
// Encoding result meta
// ---------------------------------------------------------------------------------------------------

export interface ResultMetaOptions {
  /** Time the state was reached (epoch ms); becomes date_done for ready states. Default: now. */
  now?: number;
  /** Written as group_id when set (task belonged to a group). */
  groupId?: string;
  /** Written as parent_id when set. */
  parentId?: string;
  /** Nested result tuples of subtasks; qworker has none, so [] by default. */
  children?: unknown[];
  /** Celery `result_extended` fields, written only when given. */
  extended?: { name?: string; args?: unknown[]; kwargs?: Record<string, unknown>; worker?: string; retries?: number; queue?: string };
}

export type CeleryResultMeta = {
  status: string;
  result: unknown;
  traceback: string | null;
  children: unknown[] | null;
  date_done: string | null;
  group_id?: string;
  parent_id?: string;
  task_id: string;
} & Record<string, unknown>;

/** Build a meta object in Celery's key order; `result` must already be JSON-serializable. */
export function buildResultMeta(
  taskId: string,
  status: string,
  result: unknown,
  traceback: string | null,
  options: ResultMetaOptions = {},
): CeleryResultMeta {
  const meta: Record<string, unknown> = {
    status,
    result: result === undefined ? null : result,
    traceback,
    children: options.children ?? [],
    date_done: READY_STATES.has(status) ? formatNaiveUtc(options.now ?? Date.now()) : null,
  };
  if (options.groupId) meta["group_id"] = options.groupId;
  if (options.parentId) meta["parent_id"] = options.parentId;
  if (options.extended) {
    const e = options.extended;
    Object.assign(meta, {
      name: e.name ?? null,
      args: e.args ?? null,
      kwargs: e.kwargs ?? null,
      worker: e.worker ?? null,
      retries: e.retries ?? null,
      queue: e.queue ?? null,
    });
  }
  meta["task_id"] = taskId;
  return meta as CeleryResultMeta;
}

/** Serialize to the text stored with SETEX and sent with PUBLISH. Throws if the value is not JSON. */
export function serializeResultMeta(meta: CeleryResultMeta): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(meta);
  } catch (err) {
    throw new MessageError(`celery result for ${meta.task_id} is not JSON-serializable (${(err as Error).message})`);
  }
  if (text === undefined) throw new MessageError(`celery result for ${meta.task_id} is not JSON-serializable`);
  return text;
}

export function successMeta(taskId: string, value: unknown, options?: ResultMetaOptions): CeleryResultMeta {
  return buildResultMeta(taskId, "SUCCESS", value, null, options);
}

export function failureMeta(taskId: string, thrown: unknown, options?: ResultMetaOptions & { traceback?: string | null }): CeleryResultMeta {
  const tb = options?.traceback !== undefined ? options.traceback : tracebackFor(thrown);
  return buildResultMeta(taskId, "FAILURE", toCeleryException(thrown), tb, options);
}

export function retryMeta(taskId: string, thrown: unknown, options?: ResultMetaOptions & { traceback?: string | null }): CeleryResultMeta {
  const tb = options?.traceback !== undefined ? options.traceback : tracebackFor(thrown);
  return buildResultMeta(taskId, "RETRY", toCeleryException(thrown), tb, options);
}

/** STARTED, as written when `task_track_started` is on: result `{pid, hostname}`, no date_done. */
export function startedMeta(taskId: string, info: { pid: number; hostname: string }, options?: ResultMetaOptions): CeleryResultMeta {
  return buildResultMeta(taskId, "STARTED", { pid: info.pid, hostname: info.hostname }, null, options);
}

/** REVOKED with `celery.exceptions.TaskRevokedError(reason)`; Celery uses "revoked" or "expired". */
export function revokedMeta(taskId: string, reason: "revoked" | "expired" | (string & {}), options?: ResultMetaOptions): CeleryResultMeta {
  const exc: CeleryExceptionInfo = { exc_type: "TaskRevokedError", exc_message: [reason], exc_module: "celery.exceptions" };
  return buildResultMeta(taskId, "REVOKED", exc, null, options);
}

/** FAILURE for a task name this worker does not know, exactly as a Celery worker stores it. */
export function notRegisteredMeta(taskId: string, taskName: string, options?: ResultMetaOptions): CeleryResultMeta {
  const exc: CeleryExceptionInfo = { exc_type: "NotRegistered", exc_message: [taskName], exc_module: "celery.exceptions" };
  return buildResultMeta(taskId, "FAILURE", exc, null, options);
}

// ---------------------------------------------------------------------------------------------------
// Decoding result meta
// ---------------------------------------------------------------------------------------------------

/** A Python exception read back from a Celery result, as a JS error. `name` is the Python type name. */
export class CeleryTaskError extends QWorkerError {
  readonly excType: string;
  readonly excModule: string;
  readonly args: readonly unknown[];
  readonly taskId: string | undefined;
  readonly traceback: string | undefined;
  readonly state: string;
  constructor(info: { excType: string; excModule: string; args: unknown[]; taskId?: string; traceback?: string | null; state: string }) {
    super("E_CELERY_TASK", pythonStr(info.args));
    const last = info.excType.split(".").pop() ?? info.excType;
    this.name = last || "Exception";
    this.excType = info.excType;
    this.excModule = info.excModule;
    this.args = info.args;
    this.taskId = info.taskId;
    this.traceback = info.traceback ?? undefined;
    this.state = info.state;
  }
  /** `module.Type`, as Python would print the class. */
  get pythonClass(): string {
    return `${this.excModule}.${this.excType}`;
  }
}

/** Roughly Python's str(exc): the lone argument, or the argument tuple's text. */
function pythonStr(args: readonly unknown[]): string {
  if (args.length === 0) return "";
  if (args.length === 1) return typeof args[0] === "string" ? args[0] : safeJson(args[0]);
  return safeJson(args);
}

const metaSchema = z.looseObject({
  status: z.string().min(1),
  result: z.unknown().optional(),
  traceback: z.string().nullish(),
  children: z.array(z.unknown()).nullish(),
  date_done: z.string().nullish(),
  task_id: z.string().nullish(),
  group_id: z.string().nullish(),
  parent_id: z.string().nullish(),
});

export interface DecodedCeleryResult {
  state: string;
  taskId: string | undefined;
  /** SUCCESS, FAILURE or REVOKED: a waiting client stops here. */
  ready: boolean;
  /** The return value (SUCCESS), progress meta (STARTED/custom states); undefined for exception states. */
  result?: unknown;
  /** The rebuilt exception for FAILURE/RETRY/REVOKED. */
  error?: CeleryTaskError;
  traceback: string | undefined;
  /** date_done as epoch ms (it is naive UTC on the wire). */
  dateDone: number | undefined;
  children: unknown[];
  groupId: string | undefined;
  parentId: string | undefined;
  /** The whole meta object, including extended fields. */
  meta: Record<string, unknown>;
}

function exceptionFromResult(result: unknown, state: string, taskId: string | undefined, traceback: string | undefined): CeleryTaskError {
  const base = { taskId, traceback, state } as const;
  if (typeof result === "object" && result !== null && !Array.isArray(result)) {
    const r = result as Record<string, unknown>;
    if (typeof r["exc_type"] === "string" && r["exc_type"].length > 0) {
      const msg = r["exc_message"];
      const args = Array.isArray(msg) ? msg : msg === undefined || msg === null || msg === "" ? [] : [msg];
      const module = typeof r["exc_module"] === "string" ? r["exc_module"] : "celery.exceptions";
      return new CeleryTaskError({ ...base, excType: r["exc_type"], excModule: module, args });
    }
  }
  // Celery itself raises for this; keep the payload visible instead.
  return new CeleryTaskError({ ...base, excType: "Exception", excModule: "builtins", args: [`unrecognised exception payload: ${safeJson(result)}`] });
}

/** Parse a stored/published meta text (or already-parsed object). Throws MessageError when it is not one. */
export function decodeResultMeta(raw: string | Buffer | Record<string, unknown>): DecodedCeleryResult {
  let data: unknown = raw;
  let text: string | undefined;
  if (typeof raw === "string" || Buffer.isBuffer(raw)) {
    text = typeof raw === "string" ? raw : raw.toString("utf8");
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new MessageError(`celery result: not valid JSON (${(err as Error).message})`);
    }
  }
  // Its exception arguments are turned into a message, and a client prints the result: both recurse.
  const deep = excessiveNesting(data, text);
  if (deep !== undefined) throw new MessageError(`celery result: ${deep}`);
  const parsed = metaSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MessageError(`celery result: ${issue && issue.path.length ? issue.path.join(".") + ": " : ""}${issue?.message ?? "invalid"}`);
  }
  const m = parsed.data;
  const taskId = m.task_id ?? undefined;
  const traceback = m.traceback ?? undefined;
  const dateDone = m.date_done ? parseIsoDateTime(m.date_done, "utc") : undefined;
  const out: DecodedCeleryResult = {
    state: m.status,
    taskId,
    ready: READY_STATES.has(m.status),
    traceback,
    dateDone,
    children: m.children ?? [],
    groupId: m.group_id ?? undefined,
    parentId: m.parent_id ?? undefined,
    meta: m as Record<string, unknown>,
  };
  if (EXCEPTION_STATES.has(m.status)) out.error = exceptionFromResult(m.result, m.status, taskId, traceback);
  else out.result = m.result;
  return out;
}
