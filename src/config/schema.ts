import { z } from "zod";
import { MAX_TIME_LIMIT_SEC, TOO_LONG_LIMIT } from "../tasks/time-limits.ts";
import { isRedisUrl, parseRedisUrl } from "../broker/redis/url.ts";
import { celeryConfigSchema } from "../celery/config.ts";

const seconds = z.number().nonnegative();
/** A route's queue: a name, or Celery's form `{queue: name}` (other Celery route keys have no meaning here). */
const taskRoute = z
  .union([z.string().min(1), z.object({ queue: z.string().min(1) }).strict()], {
    error: "expected a queue name, or {queue: name} as Celery writes it",
  })
  .transform((r) => (typeof r === "string" ? r : r.queue));
const timeLimit = seconds.max(MAX_TIME_LIMIT_SEC, {
  message: `${TOO_LONG_LIMIT}; leave it unset for no limit`,
});
/** command_timeout's default, in seconds; also what a Celery client given only a URL uses. */
export const DEFAULT_COMMAND_TIMEOUT = 10;
const brokerUrl = z.string().superRefine((s, ctx) => {
  const problem = brokerUrlProblem(s);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/** Why a broker URL cannot be used, or undefined when it can. */
function brokerUrlProblem(s: string): string | undefined {
  if (/^sentinel:\/\//i.test(s)) {
    return "kombu's sentinel:// form is not read: write redis+sentinel://host:26379[,host:26379…]/master-name[/db]";
  }
  if (isRedisUrl(s)) {
    // Sentinel and Cluster URLs have more to get wrong (hosts, master name, options): say what at load.
    try {
      parseRedisUrl(s);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }
  try {
    if (new URL(s).protocol === "sqlite:") return undefined;
  } catch {
    // not a URL at all: same message
  }
  return "expected a URL starting with redis://, rediss://, redis+sentinel://, redis+cluster:// or sqlite://";
}

export const retryPolicySchema = z
  .object({
    /** Retries after the first attempt (so max + 1 runs at most). */
    max: z.number().int().min(0).default(3),
    /** Delay before the first retry, seconds. */
    countdown: seconds.default(1),
    /** Double the delay on each retry. */
    backoff: z.boolean().default(true),
    backoff_max: seconds.default(600),
    /** Randomise each delay within [delay/2, delay] so retries of a failed batch spread out. */
    jitter: z.boolean().default(true),
  })
  .strict();

export const configSchema = z
  .object({
    broker_url: brokerUrl.optional(),
    concurrency: z.number().int().min(1).max(10_000).default(10),
    queues: z.array(z.string().min(1)).min(1).default(["default"]),
    default_queue: z.string().min(1).default("default"),
    /** Queue for a task sent by name without one: task name or glob (`reports.*`) to queue (src/client/routes.ts). */
    task_routes: z.record(z.string().min(1), taskRoute, { error: 'expected a mapping of task names or globs to queues, e.g. {"reports.*": reports}' }).default({}),
    tasks_dir: z.string().min(1).default("tasks"),
    // Any case, as Celery users write it (--loglevel INFO, WARNING).
    loglevel: z.preprocess((v) => (typeof v === "string" ? v.toLowerCase() : v), z.enum(["debug", "info", "warning", "error"])).default("info"),
    log_format: z.enum(["auto", "pretty", "json"]).default("auto"),
    pool: z.enum(["async", "process"]).default("async"),
    /** Process pool: replace a child after this many tasks (0: never). */
    max_tasks_per_child: z.number().int().min(0).default(0),
    /** Process pool: replace a child whose resident memory exceeds this many KiB after a task, as Celery does (0: never). */
    max_memory_per_child: z.number().int().min(0).default(0),
    /**
     * Tasks reserved beyond free slots, so a slot that frees up finds work without a round trip. Unset:
     * automatic, sized by recent task runtimes (src/worker/prefetch.ts); 0 turns it off.
     */
    prefetch: z.number().int().min(0).optional(),
    lease_timeout: seconds.min(1).default(30),
    heartbeat_interval: seconds.min(0.1).default(2),
    heartbeat_ttl: seconds.min(1).default(10),
    max_deliveries: z.number().int().min(1).default(5),
    shutdown_timeout: seconds.default(30),
    result_expires: seconds.default(86_400),
    max_payload_bytes: z.number().int().min(1024).default(16 * 1024 * 1024),
    dead_letter_max: z.number().int().min(0).default(10_000),
    dead_letter_ttl: seconds.default(7 * 86_400),
    time_limit: timeLimit.optional(),
    soft_time_limit: timeLimit.optional(),
    retry: retryPolicySchema.default(retryPolicySchema.parse({})),
    redis_prefix: z.string().min(1).default("qw:"),
    /**
     * Redis: a send returns only once this many replicas have the task (Redis WAIT), so a failover right
     * after it cannot lose it; 0 returns as soon as the master has it.
     */
    enqueue_min_replicas: z.number().int().min(0).default(0),
    /** How long a send waits for those replicas before it fails. */
    enqueue_replica_timeout: z.number().positive().default(1),
    /**
     * Redis: how long a CLI command or an app's client waits for a reply before it fails (0: for ever).
     * Workers do not use it: their watchdog rebuilds a connection that has gone silent.
     */
    command_timeout: seconds.default(DEFAULT_COMMAND_TIMEOUT),
    /**
     * A worker whose broker cannot be reached yet when it starts (connection refused, no answer, host or
     * name not found) keeps trying, as Celery's option of this name does; false: it exits at once (exit 3).
     */
    broker_connection_retry_on_startup: z.boolean().default(true),
    /** Also consume Celery's kombu queues and write Celery results (docs/celery.md). */
    celery: celeryConfigSchema.optional(),
    /** Task events kept in the broker's stream (approximate cap); 0 turns events and stats counters off. */
    events_max_len: z.number().int().min(0).default(10_000),
    /** Serve Prometheus metrics on this port (GET /metrics; 0 picks a free one); off when unset. */
    metrics_port: z.number().int().min(0).max(65_535).optional(),
    /** Address the metrics endpoint listens on: all interfaces, as exporters usually do; 127.0.0.1 keeps it local. */
    metrics_host: z.string().min(1).default("0.0.0.0"),
  })
  .strict()
  .superRefine((c, ctx) => {
    // At or past the hard limit the soft one never fires: the task is stopped without its warning.
    // A time_limit of 0 is no limit, so any soft limit is below it.
    if (c.soft_time_limit !== undefined && c.time_limit !== undefined && c.time_limit > 0 && c.soft_time_limit >= c.time_limit) {
      ctx.addIssue({ code: "custom", path: ["soft_time_limit"], message: `must be below time_limit (${c.time_limit})` });
    }
    // A worker beats every heartbeat_interval and is taken for dead after heartbeat_ttl without a beat: at or
    // below the interval, healthy workers take each other for dead and run each other's tasks again.
    if (c.heartbeat_ttl <= c.heartbeat_interval) {
      ctx.addIssue({
        code: "custom",
        path: ["heartbeat_ttl"],
        message: `must be above heartbeat_interval (${c.heartbeat_interval}), or healthy workers are taken for dead; 3 to 5 times it is usual`,
      });
    }
  });

export type QWorkerConfig = z.infer<typeof configSchema>;
export type RetryPolicy = z.infer<typeof retryPolicySchema>;
export type ConfigKey = keyof QWorkerConfig;

/** The embedded broker used when no broker_url is configured anywhere. */
export const DEFAULT_BROKER_URL = "sqlite://.qworker/broker.db";
