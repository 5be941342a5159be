import { z } from "zod";
import { isClusterUrl, isRedisUrl, parseRedisUrl } from "../broker/redis/url.ts";

const seconds = z.number().nonnegative();
const redisUrl = z.string().superRefine((s, ctx) => {
  if (!isRedisUrl(s) || isClusterUrl(s)) {
    ctx.addIssue({ code: "custom", message: "expected a redis://, rediss:// or redis+sentinel:// URL (kombu's Redis broker; kombu has no Cluster support)" });
    return;
  }
  // As for broker_url: a Sentinel URL's hosts, master name and options are checked at load, not at connect.
  try {
    parseRedisUrl(s);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
  }
});

/**
 * The `celery:` section of the worker config: which kombu queues a worker also consumes, and how it
 * writes Celery results. Absent means the worker speaks only qworker's own protocol.
 */
export const celeryConfigSchema = z
  .object({
    /** The Redis that Celery producers use as broker (and result backend); default: broker_url. */
    broker_url: redisUrl.optional(),
    /** kombu queue names, most important first (Celery's default queue is "celery"). */
    queues: z.array(z.string().min(1)).min(1).default(["celery"]),
    /** TTL of celery-task-meta-* keys, seconds (Celery's result_expires; 0 = keep forever). */
    result_expires: seconds.default(86_400),
    /** Store STARTED when a task starts (Celery's task_track_started, a worker setting). */
    track_started: z.boolean().default(false),
    /** How often an idle worker looks at kombu's lists, seconds (kombu lists have no wake-up marker). */
    poll_interval: z.number().min(0.01).max(5).default(0.2),
    /** Follow `app.control.revoke(...)` broadcasts on kombu's pidbox channel. */
    revoke: z.boolean().default(true),
    /** How long a revoke from Celery is remembered, seconds (Celery keeps revokes 3 hours). */
    revoke_expires: seconds.default(10_800),
    /** kombu's global_keyprefix transport option, if the Celery app sets one. */
    key_prefix: z.string().default(""),
  })
  .strict();

export type CeleryConfig = z.infer<typeof celeryConfigSchema>;
