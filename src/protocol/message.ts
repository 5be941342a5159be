import { z } from "zod";
import { MessageError } from "../errors.ts";

/**
 * qworker's own task message, version 1. It is the payload a transport stores opaquely: transports never
 * parse it, so a poisoned payload reaches the worker, which can dead-letter it with a precise reason.
 *
 * Times are epoch milliseconds. `retries` counts retries already scheduled (0 on the first run), the way
 * Celery's `request.retries` does; redeliveries after a crash are counted by the broker, not here.
 */
export const MESSAGE_VERSION = 1;

export const taskMessageSchema = z
  .object({
    v: z.literal(MESSAGE_VERSION),
    id: z.string().min(1).max(200),
    task: z.string().min(1).max(200),
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

/** Parse and validate a raw payload; throws MessageError whose message says exactly what is wrong. */
export function decodeMessage(raw: string): TaskMessage {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (err) {
    throw new MessageError(`payload is not valid JSON (${(err as Error).message})`);
  }
  const parsed = taskMessageSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join(".") : "message";
    const version = (data as { v?: unknown } | null)?.v;
    if (version !== undefined && version !== MESSAGE_VERSION) {
      throw new MessageError(`unsupported message version ${JSON.stringify(version)} (this worker reads v${MESSAGE_VERSION})`);
    }
    throw new MessageError(`invalid message: ${where}: ${issue?.message ?? "does not match the schema"}`);
  }
  return parsed.data;
}
