import { z } from "zod";

/** Version of the event format in docs/events.md; readers skip events of a version they do not know. */
export const EVENT_VERSION = 1;

export const EVENT_TYPES = [
  "task-received",
  "task-started",
  "task-succeeded",
  "task-failed",
  "task-retried",
  "task-revoked",
  "task-expired",
  "task-poisoned",
] as const;

export type TaskEventType = (typeof EVENT_TYPES)[number];

/** One task event as stored in the stream (docs/events.md). */
export const taskEventSchema = z.object({
  v: z.literal(EVENT_VERSION),
  type: z.enum(EVENT_TYPES),
  id: z.string(),
  /** Epoch ms on the worker's clock. */
  ts: z.number(),
  worker: z.string(),
  task: z.string().optional(),
  queue: z.string().optional(),
  /** task-received */
  deliveries: z.number().optional(),
  retries: z.number().optional(),
  args: z.string().optional(),
  /** task-received: ms between being due (sent, or eta) and being received. */
  waitMs: z.number().optional(),
  /** task-succeeded / task-failed */
  runtimeMs: z.number().optional(),
  result: z.string().optional(),
  error: z.object({ type: z.string(), message: z.string() }).optional(),
  /** task-failed: false when a retry follows. */
  final: z.boolean().optional(),
  /** task-retried */
  delaySec: z.number().optional(),
  /** task-poisoned */
  reason: z.string().optional(),
});

export type TaskEvent = z.infer<typeof taskEventSchema>;

export function encodeEvent(e: TaskEvent): string {
  return JSON.stringify(e);
}

/** Parse a stored event; null for anything unreadable or from another format version. */
export function decodeEvent(raw: string): TaskEvent | null {
  try {
    const parsed = taskEventSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
