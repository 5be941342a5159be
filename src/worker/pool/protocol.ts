import { NonRetryableError, QWorkerError } from "../../errors.ts";
import type { TaskMessage } from "../../protocol/message.ts";
import type { ExecOutcome } from "../executor.ts";

/**
 * Messages between the worker and its pool children, over Node's IPC channel with the "advanced"
 * (structured clone) serialization, so results keep Dates, Maps and typed arrays. Errors cross as plain
 * records and are rebuilt on the other side with their name, message, stack and code, and as the qworker
 * class of that code where there is one, so `instanceof NonRetryableError` still holds in the worker.
 */

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

export type SerializedOutcome =
  | { kind: "success"; value: unknown; runtimeMs: number }
  | { kind: "failure"; error: SerializedError; runtimeMs: number }
  | { kind: "retry"; countdownSec: number | undefined; error: SerializedError; runtimeMs: number };

export type ToChild =
  | { type: "init"; tasksDir: string; loglevel: string }
  | { type: "run"; jobId: number; msg: TaskMessage; deliveries: number; softTimeLimitMs?: number }
  | { type: "abort"; jobId: number; reason: SerializedError };

export type FromChild =
  | { type: "ready" }
  | { type: "fatal"; message: string }
  | { type: "done"; jobId: number; outcome: SerializedOutcome; rssBytes: number }
  | { type: "log"; jobId: number | undefined; line: string }
  | { type: "progress"; jobId: number; fraction: number; note?: string };

export function serializeError(err: Error): SerializedError {
  const code = (err as Partial<QWorkerError>).code;
  return {
    name: err.name,
    message: err.message,
    ...(err.stack ? { stack: err.stack } : {}),
    ...(typeof code === "string" ? { code } : {}),
  };
}

/**
 * Rebuild an error from the child. The retry decision tests `instanceof NonRetryableError`, so that one
 * comes back as its class; other coded errors as a QWorkerError with the same code (what logs and the
 * stored result show), the rest as plain Errors. The name and stack are the child's.
 */
export function reviveError(s: SerializedError): Error {
  const err =
    s.code === "E_NON_RETRYABLE" ? new NonRetryableError(s.message) : s.code ? new QWorkerError(s.code, s.message) : new Error(s.message);
  err.name = s.name;
  if (s.stack) err.stack = s.stack;
  return err;
}

export function serializeOutcome(o: ExecOutcome): SerializedOutcome {
  if (o.kind === "success") return o;
  return { ...o, error: serializeError(o.error) };
}

export function reviveOutcome(o: SerializedOutcome): ExecOutcome {
  if (o.kind === "success") return o;
  return { ...o, error: reviveError(o.error) };
}

