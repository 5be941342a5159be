import { z } from "zod";
import { MessageError, quoteValue } from "../errors.ts";
import { excessiveNesting } from "./json-depth.ts";

/**
 * qworker's own task message, version 1. It is the payload a transport stores opaquely: transports never
 * parse it, so a poisoned payload reaches the worker, which can dead-letter it with a precise reason.
 *
 * Times are epoch milliseconds. `retries` counts retries already scheduled (0 on the first run), the way
 * Celery's `request.retries` does; redeliveries after a crash are counted by the broker, not here.
 */
export const MESSAGE_VERSION = 1;

/** The longest task id and task name a message may carry. */
export const MAX_NAME_LENGTH = 200;

export const taskMessageSchema = z
  .object({
    v: z.literal(MESSAGE_VERSION),
    id: z.string().min(1).max(MAX_NAME_LENGTH),
    task: z.string().min(1).max(MAX_NAME_LENGTH),
    args: z.array(z.unknown()),
    kwargs: z.record(z.string(), z.unknown()),
    queue: z.string().min(1),
    priority: z.number().int().min(0).max(9),
    retries: z.number().int().min(0),
    sentAt: z.number(),
    eta: z.number().optional(),
    expires: z.number().optional(),
    timeLimitMs: z.number().positive().optional(),
    softTimeLimitMs: z.number().positive().optional(),
    maxRetries: z.number().int().min(0).optional(),
    uniqueKey: z.string().optional(),
    ignoreResult: z.boolean().optional(),
    origin: z.string().optional(),
  })
  .strict();

export type TaskMessage = z.infer<typeof taskMessageSchema>;

export function encodeMessage(msg: TaskMessage): string {
  return JSON.stringify(msg);
}

const KNOWN_KEYS = new Set(Object.keys(taskMessageSchema.shape));

const isText = (v: unknown, max: number): boolean => typeof v === "string" && v.length >= 1 && v.length <= max;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNum = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);
const optional = (v: unknown, ok: (v: unknown) => boolean): boolean => v === undefined || ok(v);

/**
 * The schema above, checked by hand for the common case: the worker decodes every task, and zod's
 * general-purpose walk (and the copy it returns) cost more than running a no-op task. It only ever
 * accepts what the schema accepts; anything else, or anything unusual, goes to zod for the verdict and
 * its precise message. Keep it in step with the schema (test/unit/bench-hot-path.test.ts compares them).
 */
function isWellFormed(d: unknown): d is TaskMessage {
  if (typeof d !== "object" || d === null || Array.isArray(d)) return false;
  const m = d as Record<string, unknown>;
  const kwargs = m.kwargs;
  if (
    m.v !== MESSAGE_VERSION ||
    !isText(m.id, MAX_NAME_LENGTH) ||
    !isText(m.task, MAX_NAME_LENGTH) ||
    !Array.isArray(m.args) ||
    typeof kwargs !== "object" ||
    kwargs === null ||
    Array.isArray(kwargs) ||
    Object.getPrototypeOf(kwargs) !== Object.prototype ||
    !isText(m.queue, Number.MAX_SAFE_INTEGER) ||
    !isCount(m.priority) ||
    m.priority > 9 ||
    !isCount(m.retries) ||
    !isNum(m.sentAt) ||
    !optional(m.eta, isNum) ||
    !optional(m.expires, isNum) ||
    !optional(m.timeLimitMs, (v) => isNum(v) && (v as number) > 0) ||
    !optional(m.softTimeLimitMs, (v) => isNum(v) && (v as number) > 0) ||
    !optional(m.maxRetries, isCount) ||
    !optional(m.uniqueKey, (v) => typeof v === "string") ||
    !optional(m.ignoreResult, (v) => typeof v === "boolean") ||
    !optional(m.origin, (v) => typeof v === "string")
  ) {
    return false;
  }
  for (const k in m) if (!KNOWN_KEYS.has(k)) return false;
  return true;
}

/** Parse and validate a raw payload; throws MessageError whose message says exactly what is wrong. */
export function decodeMessage(raw: string): TaskMessage {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (err) {
    throw new MessageError(`payload is not valid JSON (${(err as Error).message})`);
  }
  // Before anything walks it: the worker must be able to write back what it accepts (a retry).
  const deep = excessiveNesting(data, raw);
  if (deep !== undefined) throw new MessageError(`payload ${deep}, more than a worker can write back`);
  if (isWellFormed(data)) return data;
  const parsed = taskMessageSchema.safeParse(data);
  if (!parsed.success) {
    const version = (data as { v?: unknown } | null)?.v;
    if (version !== undefined && version !== MESSAGE_VERSION) {
      throw new MessageError(`unsupported message version ${quoteValue(version)} (this worker reads v${MESSAGE_VERSION})`);
    }
    throw new MessageError(`invalid message: ${describeIssue(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * What a worker would refuse in a message this process built, or undefined: a sender checks its own
 * message with the worker's rules, so one the worker would dead-letter as poisoned (a 0 s time limit, an id
 * longer than the schema allows) fails at send time instead, whatever option produced it.
 */
export function messageProblem(msg: TaskMessage): string | undefined {
  if (isWellFormed(msg)) return undefined;
  const parsed = taskMessageSchema.safeParse(msg);
  return parsed.success ? undefined : describeIssue(parsed.error);
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join(".") : "message";
  return `${where}: ${issue?.message ?? "does not match the schema"}`;
}
