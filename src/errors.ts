/**
 * Every error qworker raises on purpose is a QWorkerError with a stable `code`, so callers (and the CLI's
 * exit-code mapping) can branch on the code instead of parsing messages. Messages are one line: they name
 * the problem and, where there is one, the fix.
 */
export class QWorkerError extends Error {
  readonly code: string;
  /** Process exit code the CLI uses when this error ends a command. */
  readonly exitCode: number;
  constructor(code: string, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** Bad configuration file, environment variable or flag. Exit code 2, like a usage error. */
export class ConfigError extends QWorkerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_CONFIG", message, { ...options, exitCode: 2 });
  }
}

/** Bad command-line input (malformed --args, conflicting options). Exit code 2. */
export class UsageError extends QWorkerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_USAGE", message, { ...options, exitCode: 2 });
  }
}

/** The broker could not be reached or answered with an error. */
export class BrokerError extends QWorkerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_BROKER", message, { ...options, exitCode: 3 });
  }
}

/**
 * A first connect to the broker failed for a reason that can pass by waiting: nothing listens yet, the host
 * or its name cannot be reached yet, or the server accepted the connection and did not answer. A worker
 * started before its Redis retries on it; commands and apps' clients fail with it like any BrokerError.
 * `problem` is the message without its advice, for a retry's log line.
 */
export class BrokerUnreachableError extends BrokerError {
  constructor(
    message: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A connection reached the server but was not ready within the connect timeout (see
 * src/broker/redis/handshake-guard.ts). The guard destroys the socket with it; openConnection reports it
 * in its own words when it ends a first connect. `reason`: "silent", no reply at all (a stopped or wedged
 * server, a dead proxy); "stalled", it answered, then stopped half-way through the handshake; "loading",
 * it is loading its data set (`etaSeconds` left, as Redis estimates it).
 */
export class HandshakeTimeoutError extends BrokerError {
  constructor(
    readonly timeoutMs: number,
    readonly reason: "silent" | "stalled" | "loading",
    readonly etaSeconds?: number,
  ) {
    super(`connected, but not ready within ${(timeoutMs / 1000).toFixed(1)} s (${reason})`);
  }
}

/**
 * Publishing task events and counters failed in part or in whole. `landed` says which of the two the
 * broker stored, so the caller re-sends only the rest: counters sent twice would count twice.
 */
export class ActivityPublishError extends BrokerError {
  constructor(
    message: string,
    readonly landed: { events: boolean; counters: boolean },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * An enqueue reached the Redis master but fewer replicas than `enqueue_min_replicas` confirmed it in
 * time: a failover now would lose it. Sending it again with the same id does not queue it twice while it
 * is still queued.
 */
export class ReplicationError extends QWorkerError {
  constructor(
    message: string,
    readonly ids: string[],
    readonly confirmed: number,
    readonly wanted: number,
  ) {
    super("E_NOT_REPLICATED", message, { exitCode: 3 });
  }
}

/** A task module failed to load, or two modules registered the same task name. */
export class TaskLoadError extends QWorkerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_TASK_LOAD", message, { ...options, exitCode: 2 });
  }
}

/** A message names a task this worker does not know. */
export class NotRegisteredError extends QWorkerError {
  constructor(taskName: string) {
    super("E_NOT_REGISTERED", `task "${taskName}" is not registered with this worker`);
  }
}

/**
 * A message read from the broker could not be decoded or validated. Its message is the reason stored with
 * the dead-lettered task and logged, so it is kept to one line: line breaks and other control characters
 * quoted from the payload (JSON.parse's errors quote the text around the fault) are escaped, and a reason
 * quoting a long value (a 100 KB key or field) is cut at MAX_REASON characters, saying how long it was.
 */
export class MessageError extends QWorkerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_MESSAGE", capped(oneLine(message), MAX_REASON), options);
  }
}

const MAX_REASON = 1000;

/** `text` cut to `max` characters with an ellipsis and its length; never between the halves of a surrogate pair. */
function capped(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  if (/[\ud800-\udbff]/.test(text[end - 1]!)) end--;
  return `${text.slice(0, end)}… (${text.length} characters)`;
}

/** A value from a payload as a reason quotes it: JSON, cut to `max` characters (the reason must stay short). */
export function quoteValue(value: unknown, max = 80): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = typeof value;
  }
  return text.length <= max ? text : capped(text, max);
}

// C0 controls, DEL, NEL and the Unicode line/paragraph separators: each breaks a log line or a table row.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f\u0085\u2028\u2029]/g;
const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `text` with every control character written as a JSON-style escape (\n, \u001b), so it prints as one line. */
export function oneLine(text: string): string {
  return text.replace(CONTROL, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Thrown by a task to say "do not retry me": the failure is final whatever the retry policy says.
 * The name mirrors BullMQ's UnrecoverableError, which task authors coming from it already know.
 */
export class NonRetryableError extends QWorkerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_NON_RETRYABLE", message, options);
  }
}

/** Raised inside a task (through its AbortSignal) when its soft time limit passes. */
export class SoftTimeLimitExceeded extends QWorkerError {
  constructor(limitMs: number) {
    super("E_SOFT_TIME_LIMIT", `soft time limit of ${limitMs / 1000} s exceeded`);
  }
}

/** The task was stopped by its hard time limit. */
export class TimeLimitExceeded extends QWorkerError {
  constructor(limitMs: number) {
    super("E_TIME_LIMIT", `hard time limit of ${limitMs / 1000} s exceeded`);
  }
}

/** The task was revoked with --terminate while it ran (the reason its AbortSignal fired). */
export class TaskRevokedError extends QWorkerError {
  constructor(id: string) {
    super("E_REVOKED", `task ${id} was revoked and terminated`);
  }
}

/** The process running a task died (crash, exit, OOM kill) before the task finished. */
export class WorkerLostError extends QWorkerError {
  constructor(message: string) {
    super("E_WORKER_LOST", message);
  }
}

/**
 * The reason a task's signal is aborted when its worker stops before the task finished: the task is being
 * handed back to its queue, so whatever the handler does next (throw, return) is not its outcome.
 */
export class WorkerShutdownError extends QWorkerError {
  constructor() {
    super("E_WORKER_SHUTDOWN", "worker shutting down: the task is handed back to its queue");
  }
}

/** Waiting for a result took longer than the caller allowed. */
/**
 * A wait for the result of a task sent with ignoreResult (its send options or its definition): the worker
 * stores none, so the wait would only ever end at its timeout.
 */
export class ResultIgnoredError extends QWorkerError {
  constructor(id: string) {
    super("E_RESULT_IGNORED", `task ${id} was sent with ignoreResult, so no result is stored to wait for: send it without ignoreResult to wait for its result`);
  }
}

export class ResultTimeoutError extends QWorkerError {
  constructor(id: string, timeoutMs: number) {
    super("E_RESULT_TIMEOUT", `no result for task ${id} within ${timeoutMs / 1000} s`, { exitCode: 124 });
  }
}

/** Turn anything thrown into an Error, keeping the original as `cause` when it was not one. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  const err = new Error(typeof value === "string" ? value : safeStringify(value));
  (err as Error & { cause?: unknown }).cause = value;
  return err;
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
