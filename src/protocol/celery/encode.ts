import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { UsageError } from "../../errors.ts";
import type { CeleryTaskRequest } from "./envelope.ts";
import { clampPriority, DEFAULT_QUEUE, queueListKey } from "./keys.ts";
import { pyReprArgs, pyReprKwargs } from "./pyrepr.ts";
import { formatAwareUtc } from "./time.ts";

/**
 * Building protocol v2 envelopes the way Celery 5.2's `apply_async` + kombu's Redis `basic_publish` do,
 * so a real Celery worker runs them. Header and property sets and their order follow Celery's; only the
 * JSON whitespace differs (Python writes `", "`/`": "` separators, which no reader depends on).
 */

export interface CelerySendOptions {
  /** Registered Celery task name, e.g. "tasks.add". */
  task: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /** Task id; a fresh UUID4 by default. */
  id?: string;
  /** Run no earlier than this (epoch ms). Mutually exclusive with countdownMs. */
  eta?: number;
  /** Run no earlier than now + countdownMs. */
  countdownMs?: number;
  /** Do not run after this time (epoch ms). Mutually exclusive with expiresInMs. */
  expires?: number;
  /** Do not run after now + expiresInMs. */
  expiresInMs?: number;
  /** Queue name (default "celery"). With the default exchange "", the routing key is the queue. */
  queue?: string;
  /** Exchange name written to delivery_info (default "": kombu's anonymous exchange). */
  exchange?: string;
  /** Routing key written to delivery_info (default: the queue name). */
  routingKey?: string;
  /** 0..9, 0 is served first on Redis (default 0). */
  priority?: number;
  retries?: number;
  rootId?: string;
  parentId?: string;
  group?: string;
  groupIndex?: number;
  shadow?: string;
  hardTimeLimitMs?: number;
  softTimeLimitMs?: number;
  ignoreResult?: boolean;
  /** `reply_to` property (only the rpc:// result backend reads it). Default "". */
  replyTo?: string;
  /** `origin` header; default `qworker<pid>@<hostname>`, shaped like Celery's `gen<pid>@<hostname>`. */
  origin?: string;
  /** Extra headers, merged after the standard ones (Celery's `headers=`). */
  headers?: Record<string, unknown>;
  /** Clock for countdown/expiresIn (epoch ms); tests pin it. */
  now?: number;
  /** kombu `global_keyprefix`, applied to the list key only. */
  keyPrefix?: string;
}

export interface EncodedCeleryMessage {
  id: string;
  queue: string;
  /** The Redis list to LPUSH `raw` onto (priority-suffixed per kombu). */
  listKey: string;
  deliveryTag: string;
  /** The envelope JSON text to LPUSH. */
  raw: string;
}

export function defaultOrigin(): string {
  return `qworker${process.pid}@${hostname()}`;
}

function secondsOrNull(ms: number | undefined): number | null {
  return ms === undefined ? null : ms / 1000;
}

function checkTime(name: string, value: number | undefined): void {
  if (value !== undefined && !Number.isFinite(value)) throw new UsageError(`celery ${name} must be a finite number of milliseconds`);
}

/** Build the envelope for one task call. Throws UsageError for contradictory or malformed options. */
export function encodeCeleryTask(options: CelerySendOptions): EncodedCeleryMessage {
  const { task } = options;
  if (typeof task !== "string" || task.length === 0) throw new UsageError("celery task name must be a non-empty string");
  const args = options.args ?? [];
  const kwargs = options.kwargs ?? {};
  if (!Array.isArray(args)) throw new UsageError("celery task args must be a list");
  if (typeof kwargs !== "object" || kwargs === null || Array.isArray(kwargs)) {
    throw new UsageError("celery task kwargs must be an object");
  }
  if (options.eta !== undefined && options.countdownMs !== undefined) throw new UsageError("give either eta or countdown, not both");
  if (options.expires !== undefined && options.expiresInMs !== undefined) throw new UsageError("give either expires or expiresIn, not both");
  for (const k of ["eta", "countdownMs", "expires", "expiresInMs", "hardTimeLimitMs", "softTimeLimitMs"] as const) checkTime(k, options[k]);

  const now = options.now ?? Date.now();
  const id = options.id ?? randomUUID();
  const queue = options.queue ?? DEFAULT_QUEUE;
  const exchange = options.exchange ?? "";
  const routingKey = options.routingKey ?? queue;
  const priority = clampPriority(options.priority ?? 0);
  const eta = options.eta ?? (options.countdownMs ? now + options.countdownMs : undefined);
  const expires = options.expires ?? (options.expiresInMs !== undefined ? now + options.expiresInMs : undefined);
  const deliveryTag = randomUUID();

  // Built in exactly Celery's order (amqp.as_task_v2), then kombu's additions.
  const headers: Record<string, unknown> = {
    lang: "py",
    task,
    id,
    shadow: options.shadow ?? null,
    eta: eta === undefined ? null : formatAwareUtc(eta),
    expires: expires === undefined ? null : formatAwareUtc(expires),
    group: options.group ?? null,
    group_index: options.groupIndex ?? null,
    retries: options.retries ?? 0,
    timelimit: [secondsOrNull(options.hardTimeLimitMs), secondsOrNull(options.softTimeLimitMs)],
    root_id: options.rootId || id,
    parent_id: options.parentId ?? null,
    argsrepr: pyReprArgs(args),
    kwargsrepr: pyReprKwargs(kwargs),
    origin: options.origin ?? defaultOrigin(),
    ignore_result: options.ignoreResult ?? false,
    ...options.headers,
  };
  const body = [args, kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }];
  const properties: Record<string, unknown> = {
    correlation_id: id,
    reply_to: options.replyTo ?? "",
    delivery_mode: 2,
  };
  // Celery also sets the AMQP per-message TTL (milliseconds, as text) when `expires` is given.
  if (expires !== undefined) properties["expiration"] = String(Math.max(0, Math.trunc(expires - now)));
  Object.assign(properties, {
    delivery_info: { exchange, routing_key: routingKey },
    priority,
    body_encoding: "base64",
    delivery_tag: deliveryTag,
  });
  const envelope = {
    body: Buffer.from(JSON.stringify(body), "utf8").toString("base64"),
    "content-encoding": "utf-8",
    "content-type": "application/json",
    headers,
    properties,
  };
  return { id, queue, listKey: queueListKey(queue, priority, options.keyPrefix ?? ""), deliveryTag, raw: JSON.stringify(envelope) };
}

/** Celery's `Task.default_retry_delay`: 180 s. */
export const DEFAULT_RETRY_DELAY_MS = 180_000;
/** Celery's `Task.max_retries` default. */
export const DEFAULT_MAX_RETRIES = 3;

export interface CeleryRetryOptions {
  /** Delay before the retry runs (default 180 s, Celery's default_retry_delay). Ignored when eta is given. */
  countdownMs?: number;
  /** Absolute time of the retry (epoch ms). */
  eta?: number;
  /** Replace the arguments (Celery's `self.retry(args=..., kwargs=...)`). */
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /** Send the retry to another queue; default: where the message came from. */
  queue?: string;
  origin?: string;
  now?: number;
  keyPrefix?: string;
}

/**
 * The message Celery re-publishes when a task calls `self.retry()` (app/task.py `retry` →
 * `signature_from_request` → `apply_async`): same id, `retries + 1`, a new ETA, the same root id, and as
 * parent the original parent or, for a task sent from a client, the task itself (the retry is sent from
 * inside the running task). expires, group, time limits, shadow and priority carry over; a new
 * delivery_tag is drawn. The caller stores state RETRY after pushing this.
 */
export function encodeCeleryRetry(request: CeleryTaskRequest, options: CeleryRetryOptions = {}): EncodedCeleryMessage {
  const now = options.now ?? Date.now();
  const eta = options.eta ?? now + (options.countdownMs ?? DEFAULT_RETRY_DELAY_MS);
  const { exchange, routingKey } = request.deliveryInfo;
  // Celery: anonymous exchange + routing key → send to that queue; otherwise reuse exchange/routing key.
  const queue = options.queue ?? (routingKey || DEFAULT_QUEUE);
  return encodeCeleryTask({
    task: request.task,
    id: request.id,
    args: options.args ?? request.args,
    kwargs: options.kwargs ?? request.kwargs,
    eta,
    ...(request.expires !== undefined ? { expires: request.expires } : {}),
    queue,
    ...(options.queue === undefined && exchange ? { exchange, routingKey } : {}),
    priority: request.priority,
    retries: request.retries + 1,
    rootId: request.rootId ?? request.id,
    parentId: request.parentId ?? request.id,
    ...(request.group !== undefined ? { group: request.group } : {}),
    ...(request.groupIndex !== undefined ? { groupIndex: request.groupIndex } : {}),
    ...(request.shadow !== undefined ? { shadow: request.shadow } : {}),
    ...(request.hardTimeLimitMs !== undefined ? { hardTimeLimitMs: request.hardTimeLimitMs } : {}),
    ...(request.softTimeLimitMs !== undefined ? { softTimeLimitMs: request.softTimeLimitMs } : {}),
    ignoreResult: request.ignoreResult,
    ...(request.replyTo !== undefined ? { replyTo: request.replyTo } : {}),
    ...(options.origin !== undefined ? { origin: options.origin } : {}),
    now,
    ...(options.keyPrefix !== undefined ? { keyPrefix: options.keyPrefix } : {}),
  });
}
