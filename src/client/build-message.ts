import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { UsageError } from "../errors.ts";
import { excessiveNesting } from "../protocol/json-depth.ts";
import { encodeMessage, MESSAGE_VERSION, messageProblem, type TaskMessage } from "../protocol/message.ts";
import type { EnqueueItem } from "../broker/transport.ts";
import type { SendOptions } from "./types.ts";
import { timeLimitsProblem } from "../tasks/time-limits.ts";

const origin = `${hostname()}:${process.pid}`;

/**
 * The furthest ahead a countdown or eta may send a task: 10 years. No real schedule is that far out, so
 * what gets there is a mistake (milliseconds given as seconds); and it keeps every due time well inside
 * what a Date can hold, so `inspect scheduled` and `result` can always show it.
 */
const MAX_DELAY_SEC = 10 * 365 * 86_400;

function toEpochMs(value: Date | string | number, what: string, expected = "an ISO-8601 date"): number {
  // Date.parse("300") is the year 300: a number sent as a string would make a task due, or expired, at once.
  if (typeof value === "string" && /^\s*[\d.]+\s*$/.test(value)) {
    throw new UsageError(`${what}: expected ${expected}, found the string ${JSON.stringify(value)}: pass a number, not a string of digits`);
  }
  const ms = value instanceof Date ? value.getTime() : typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw new UsageError(`${what}: expected ${expected}, found ${JSON.stringify(value)}`);
  return ms;
}

/** The longest task name the message schema (src/protocol/message.ts) lets a worker accept. */
const MAX_TASK_NAME = 200;

/** Refuse a task name every worker would reject as a poisoned message, before anything is sent. */
export function checkTaskName(task: unknown): void {
  if (typeof task !== "string" || task.trim() === "") {
    throw new UsageError(`task name must not be empty or blank, found ${JSON.stringify(task) ?? String(task)}: give the name the task was defined with, e.g. "shop.send_invoice_email"`);
  }
  if (task.length > MAX_TASK_NAME) throw new UsageError(`task name is ${task.length} characters, over the ${MAX_TASK_NAME} a worker accepts: shorten it`);
}

/** A message's limit replaces the task's, and a message has no way to say "no limit": above 0 only. */
function checkSentLimit(name: string, seconds: unknown): void {
  if (seconds !== undefined && !(typeof seconds === "number" && seconds > 0)) {
    throw new UsageError(`${name} must be a number of seconds above 0 when sent, found ${JSON.stringify(seconds) ?? String(seconds)}`);
  }
}

/** A queue a task may be sent to by name. */
function checkQueueName(queue: unknown): void {
  if (typeof queue !== "string" || queue.trim() === "") {
    throw new UsageError(`queue must be a queue name, found ${JSON.stringify(queue) ?? String(queue)}: leave it unset for the task's route or default_queue`);
  }
  // A worker's Celery bridge keeps the messages it takes from kombu queue X in queue "celery:X" (see
  // leaseQueue in src/celery/consumer.ts): a qworker message there would be dead-lettered as undecodable.
  if (queue.startsWith("celery:")) {
    throw new UsageError(`queue ${queue} is where a worker keeps the Celery messages it took from kombu queue ${queue.slice(7)}: send to Celery workers with --celery (createCeleryClient) and queue ${queue.slice(7)}`);
  }
}

/**
 * uniqueKey and uniqueFor, as both brokers can keep them: an empty key was a key on one broker and none on
 * the other, and a uniqueFor that is not a number of seconds >= 0 held the key for no time or for ever.
 */
function checkUniqueness(options: SendOptions): void {
  const { uniqueKey, uniqueFor } = options;
  if (uniqueKey !== undefined && (typeof uniqueKey !== "string" || uniqueKey === "")) {
    throw new UsageError(`uniqueKey must be a non-empty string, found ${JSON.stringify(uniqueKey) ?? String(uniqueKey)}: leave it unset to send without one`);
  }
  if (uniqueFor === undefined) return;
  if (typeof uniqueFor !== "number" || !(uniqueFor >= 0) || uniqueFor > MAX_DELAY_SEC) {
    throw new UsageError(`uniqueFor must be a number of seconds from 0 (until the task ends) to ${MAX_DELAY_SEC} (10 years), found ${typeof uniqueFor === "number" ? uniqueFor : JSON.stringify(uniqueFor)}`);
  }
  if (uniqueKey === undefined) throw new UsageError(`uniqueFor (${uniqueFor} s) needs a uniqueKey: it says how long that key is held`);
}

/** Turn a send call into the broker item; checks every option so a bad one fails before anything is sent. */
export function buildEnqueueItem(
  task: string,
  args: unknown[],
  options: SendOptions,
  defaults: { queue: string; maxPayloadBytes: number; route?: (task: string) => string | undefined },
): EnqueueItem {
  checkTaskName(task);
  if (!Array.isArray(args)) throw new UsageError(`args must be an array, found ${typeof args}`);
  if (typeof options !== "object" || options === null) throw new UsageError(`options must be an object, found ${options === null ? "null" : typeof options}`);
  const now = Date.now();
  const priority = options.priority ?? 0;
  if (!Number.isInteger(priority) || priority < 0 || priority > 9) {
    throw new UsageError(`priority must be an integer from 0 to 9, found ${JSON.stringify(priority) ?? String(priority)}`);
  }
  if (options.queue !== undefined) checkQueueName(options.queue);
  if (options.countdown !== undefined && options.eta !== undefined) throw new UsageError("give either countdown or eta, not both");
  let eta: number | undefined;
  if (options.countdown !== undefined) {
    if (typeof options.countdown !== "number" || !(options.countdown >= 0)) {
      throw new UsageError(`countdown must be a number of seconds >= 0, found ${JSON.stringify(options.countdown) ?? String(options.countdown)}`);
    }
    if (options.countdown > MAX_DELAY_SEC) {
      throw new UsageError(`countdown must be at most ${MAX_DELAY_SEC} seconds (10 years), found ${options.countdown}: it is in seconds, not milliseconds`);
    }
    eta = now + options.countdown * 1000;
  }
  if (options.eta !== undefined) {
    eta = toEpochMs(options.eta, "eta", "a Date, an ISO-8601 date or epoch milliseconds");
    if (eta - now > MAX_DELAY_SEC * 1000) throw new UsageError(`eta must be at most 10 years from now, found ${JSON.stringify(options.eta)}`);
  }
  const limits = timeLimitsProblem(options.softTimeLimit, options.timeLimit);
  if (limits) throw new UsageError(limits);
  checkSentLimit("timeLimit", options.timeLimit);
  checkSentLimit("softTimeLimit", options.softTimeLimit);
  checkUniqueness(options);
  let expires: number | undefined;
  if (options.expires !== undefined) {
    expires = typeof options.expires === "number" ? now + options.expires * 1000 : toEpochMs(options.expires, "expires", "seconds from now (e.g. 300) or an ISO-8601 date (e.g. 2030-01-01T12:00:00Z)");
  }
  const msg: TaskMessage = {
    v: MESSAGE_VERSION,
    id: options.id ?? randomUUID(),
    task,
    args,
    kwargs: options.kwargs ?? {},
    queue: options.queue ?? defaults.route?.(task) ?? defaults.queue,
    priority,
    retries: 0,
    sentAt: now,
    origin,
  };
  // Assigned, not spread from conditional literals: a bulk send builds thousands of these, and the
  // spreads cost more than the rest of the message. Same keys in the same order, so the same JSON.
  if (eta !== undefined) msg.eta = eta;
  if (expires !== undefined) msg.expires = expires;
  if (options.timeLimit !== undefined) msg.timeLimitMs = options.timeLimit * 1000;
  if (options.softTimeLimit !== undefined) msg.softTimeLimitMs = options.softTimeLimit * 1000;
  if (options.maxRetries !== undefined) msg.maxRetries = options.maxRetries;
  if (options.uniqueKey !== undefined) msg.uniqueKey = options.uniqueKey;
  if (options.ignoreResult) msg.ignoreResult = true;
  const problem = messageProblem(msg);
  if (problem) throw new UsageError(`cannot send ${task}: a worker would refuse its message (${problem})`);
  let payload: string;
  try {
    payload = encodeMessage(msg);
  } catch (err) {
    throw new UsageError(`arguments of ${task} cannot be sent as JSON: ${(err as Error).message}`);
  }
  // The worker's rule (decodeMessage), checked here as messageProblem checks the others.
  const deep = excessiveNesting(msg, payload);
  if (deep !== undefined) throw new UsageError(`cannot send ${task}: a worker would refuse its message (payload ${deep})`);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most payloads are clearly small enough without counting.
  const bytes = payload.length * 3 <= defaults.maxPayloadBytes ? 0 : Buffer.byteLength(payload);
  if (bytes > defaults.maxPayloadBytes) {
    throw new UsageError(
      `payload of ${task} is ${bytes} bytes, over max_payload_bytes (${defaults.maxPayloadBytes}): pass a reference (a URL, a row id) instead of the data, or raise max_payload_bytes`,
    );
  }
  return {
    id: msg.id,
    queue: msg.queue,
    priority,
    payload,
    ...(eta !== undefined ? { dueAt: eta } : {}),
    ...(options.uniqueKey !== undefined ? { uniqueKey: options.uniqueKey } : {}),
    ...(options.uniqueFor !== undefined ? { uniqueForMs: options.uniqueFor * 1000 } : {}),
  };
}
