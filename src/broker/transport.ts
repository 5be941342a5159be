/**
 * The transport boundary: everything the worker, the client and the CLI need from a broker, in queue terms.
 * Implementations: `redis/` (production) and `embedded/` (SQLite, nothing to install). Both must pass the
 * conformance suite in test/integration/conformance; a new transport only has to pass it too
 * (docs/transports.md).
 *
 * Contract shared by every implementation:
 * - Payloads are opaque strings (an encoded TaskMessage). A transport never parses them.
 * - At-least-once: `reserve` leases each task to the caller under a fresh token until `leaseUntil`;
 *   only the holder of the current token can settle, retry, release or extend it. A lease that expires,
 *   or whose worker's heartbeat lapses, is put back by `recover` (called by any live worker) and the
 *   task's delivery count goes up; past `maxDeliveries` the task is dead-lettered instead.
 * - Delayed tasks (`dueAt` in the future) live in the broker and are promoted by `recover`/`reserve`,
 *   never held in a worker's memory.
 * - Priorities: 0..9, higher first; FIFO within one priority.
 * - Every batch method does its work in one atomic step per item (one round trip per batch on Redis).
 */

export interface EnqueueItem {
  id: string;
  queue: string;
  priority: number;
  payload: string;
  /** Epoch ms; when later than now the task waits in the delayed set until then. */
  dueAt?: number;
  /** Idempotency key: while a task with this key is queued or running, enqueue returns its id instead. */
  uniqueKey?: string;
  /** How long the unique key holds at most, in ms (default: until the task finishes). */
  uniqueForMs?: number;
}

export interface EnqueueResult {
  /** The id that will run: the item's own, or the earlier task's when its unique key was taken. */
  id: string;
  duplicate: boolean;
}

/** What Transport.revoke did besides revoking the ids as given. */
export interface RevokeReport {
  /** Each `celery:…` lease id given, with the Celery task id revoked in its place; in the order given. */
  aliases: [lease: string, taskId: string][];
}

/** Hears revokes: see Transport.onRevoke. */
export type RevokeListener = (ids: string[], terminate: boolean, ttlMs?: number) => void;

export interface ReserveRequest {
  queues: string[];
  /** Most tasks to return (the worker's free slots plus prefetch). */
  max: number;
  leaseMs: number;
  workerId: string;
  /** How long to block when nothing is ready (0: return at once). */
  waitMs: number;
  /** TTL of the REVOKED result stored for a revoked task found while reserving (default: the transport's, see revoke). */
  resultTtlMs?: number;
}

export interface Reservation {
  id: string;
  queue: string;
  payload: string;
  token: string;
  /** 1 on the first delivery; more after crashes or lease expiry. */
  deliveries: number;
  leaseUntil: number;
}

export type Outcome = "SUCCESS" | "FAILURE" | "REVOKED" | "EXPIRED";

export interface SettleItem {
  id: string;
  token: string;
  queue: string;
  outcome: Outcome;
  /** Encoded TaskResult to store, or undefined to store nothing (ignore_result). */
  result?: string;
  resultTtlMs: number;
  /** Also move the task to the dead-letter set with this reason (failures that exhausted retries). */
  deadReason?: string;
  /** With deadReason: the last error, as "Type: message", kept with the dead task like DeadLetterItem.error. */
  deadError?: string;
  uniqueKey?: string;
}

export interface RetryItem {
  id: string;
  token: string;
  queue: string;
  priority: number;
  /** The message to run next time (its `retries` already incremented). */
  payload: string;
  dueAt: number;
}

export interface LeaseRef {
  id: string;
  token: string;
  queue: string;
}

export interface DeadLetterItem extends LeaseRef {
  reason: string;
  /** Optional error text kept with the dead task. */
  error?: string;
}

export interface RecoverOptions {
  maxDeliveries: number;
  /** A worker whose heartbeat is older than this is dead: its leased tasks go back at once. */
  heartbeatTtlMs: number;
  deadMax: number;
  deadTtlMs: number;
}

export interface RecoverReport {
  promoted: number;
  recovered: number;
  deadLettered: number;
  /** One line per poisoned entry found since the last sweep (wrong type, missing data); each reported once. */
  poisoned?: string[];
}

export interface QueueCounts {
  name: string;
  ready: number;
  delayed: number;
  active: number;
  dead: number;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  pool: string;
  queues: string[];
  startedAt: number;
  lastBeat: number;
  /** Tasks finished since start: succeeded, failed for good, revoked or expired (a run that is retried is not). */
  processed: number;
  /** Of those, the successes. Absent from workers before 0.2, whose `processed` counted successes only. */
  succeeded?: number;
  /** Of those, the tasks that failed for good (after their last retry, unregistered, undecodable). */
  failed: number;
  active: number;
  version: string;
  /** Progress reported by running tasks (ctx.progress), by task id; sent with each heartbeat. */
  progress?: Record<string, TaskProgress>;
  /**
   * Tasks leased to this worker that have not started yet (prefetched, waiting for a free slot), as of this
   * heartbeat; the broker sees them as active like running ones. At most PROGRESS_MAX_TASKS ids.
   */
  waiting?: string[];
  /** Execution outcomes since start: retried, timeLimited, expired, revoked, rateLimited, childLost. */
  counts?: Record<string, number>;
}

export interface TaskProgress {
  /** 0..1 */
  fraction: number;
  note?: string;
  /** Epoch ms of the report. */
  at: number;
}

/** Where an unfinished task is in the broker (what `describeTask` finds). */
export interface TaskLocation {
  id: string;
  queue: string;
  state: "ready" | "delayed" | "active" | "dead";
  payload: string;
  deliveries: number;
  workerId?: string;
  startedAt?: number;
  dueAt?: number;
  reason?: string;
}

/** What a worker flushes about its recent work in one call (an XADD and one MULTI on Redis, sent together). */
export interface ActivityBatch {
  /** Task events (docs/events.md), oldest first. */
  events: EventLines;
  /** The events stream keeps about this many entries (approximate trim). */
  eventsMaxLen: number;
  /** Per-minute counter increments. */
  counters: CounterRow[];
  /** How long a minute's counters are kept. */
  countersTtlMs: number;
}

/**
 * Task events as they are stored: JSON texts (docs/events.md) in UTF-8, one per line, joined by "\n".
 * Bytes rather than strings: a busy worker flushes hundreds of kilobytes at a time (src/events/event-lines.ts).
 */
export interface EventLines {
  data: Buffer;
  /** How many lines `data` holds. */
  count: number;
}

export interface CounterRow {
  /** Minutes since the epoch. */
  minute: number;
  /** "<kind>:<task name>", e.g. "succeeded:demo.add", "runtime_ms:demo.add". */
  key: string;
  n: number;
}

export interface StoredEvent {
  /** Stream position; ascending. */
  id: string;
  data: string;
}

export interface DeadTask {
  id: string;
  queue: string;
  payload: string;
  reason: string;
  error?: string;
  deadAt: number;
  deliveries: number;
}

export interface ActiveTask {
  id: string;
  queue: string;
  payload: string;
  workerId: string;
  leaseUntil: number;
  startedAt: number;
  deliveries: number;
}

export interface ScheduledTask {
  id: string;
  queue: string;
  payload: string;
  dueAt: number;
}

export interface Transport {
  /** "redis" | "sqlite" | … */
  readonly kind: string;
  /** The broker URL with any password masked, for logs and banners. */
  readonly displayUrl: string;

  /** Open connections; rejects with BrokerError (one line) if the broker is unreachable. */
  connect(): Promise<void>;
  close(): Promise<void>;

  enqueue(items: EnqueueItem[]): Promise<EnqueueResult[]>;
  reserve(req: ReserveRequest): Promise<Reservation[]>;
  /** Returns the ids whose token was still valid (the others were recovered elsewhere). */
  settle(items: SettleItem[]): Promise<string[]>;
  retry(item: RetryItem): Promise<boolean>;
  /** Hand tasks back to the front of their queue without counting a delivery (shutdown, prefetch). */
  release(items: LeaseRef[]): Promise<void>;
  deadLetter(items: DeadLetterItem[]): Promise<void>;
  /** Renew leases; returns ids whose lease was lost (token no longer valid). */
  extendLeases(items: LeaseRef[], leaseMs: number): Promise<string[]>;
  /**
   * Renew every lease the broker has recorded for this worker (whatever the worker process remembers),
   * and return their ids. A task recovered from the worker is no longer its lease, so it is neither
   * renewed nor returned: an id the worker holds but does not find here was lost.
   */
  extendWorkerLeases(workerId: string, leaseMs: number): Promise<string[]>;
  /**
   * Hand back leases the broker holds for `workerId` that the worker never received: a reserve that ran in
   * the broker while its reply was lost (a connection dying in between). Each goes back to the front of its
   * queue with that delivery taken back; an id whose lease no longer names the worker is left alone.
   * Returns how many were handed back. Optional: only a broker reached over a connection can lose a reply
   * (Redis); the embedded broker answers in-process.
   */
  releaseOrphans?(workerId: string, ids: string[]): Promise<number>;
  /** Promote due delayed tasks, put back expired leases and dead workers' tasks. Safe to call from many workers. */
  recover(opts: RecoverOptions): Promise<RecoverReport>;

  heartbeat(info: WorkerInfo, ttlMs: number): Promise<void>;
  removeWorker(workerId: string): Promise<void>;
  workers(): Promise<WorkerInfo[]>;

  stats(queues?: string[]): Promise<QueueCounts[]>;
  listDead(queue?: string, limit?: number): Promise<DeadTask[]>;
  requeueDead(ids: string[] | "all", queue?: string): Promise<number>;
  listActive(limit?: number): Promise<ActiveTask[]>;
  listScheduled(limit?: number): Promise<ScheduledTask[]>;
  /** Remove every ready and delayed task of a queue (and its dead-letter set when `dead`). */
  purge(queue: string, opts: { dead: boolean }): Promise<number>;

  getResult(id: string): Promise<string | null>;
  /** Resolve with the stored result as soon as it exists (also if it was stored before the call), or null on timeout. */
  waitForResult(id: string, timeoutMs: number): Promise<string | null>;

  /**
   * Durable revoke: tasks with these ids are never started; stored for ttlMs (<= 0: for ever), or for as
   * long as an earlier revoke of the id holds it if that is longer: a later, shorter revoke never cuts an
   * earlier one short. An id that names a Celery message a worker holds under a lease of its own
   * (`celery:…`, what `inspect` shows) stands for that message's Celery task id, which is revoked instead
   * (workers check and report Celery revokes by task id): the report says which ids were so replaced.
   * A transport that holds no such leases may return nothing. A waiting task's REVOKED result is kept for
   * the result TTL the transport was made with (result_expires; default one day), not for ttlMs.
   */
  revoke(ids: string[], ttlMs: number, terminate: boolean): Promise<RevokeReport | void>;
  /**
   * Called with the ids of every revoke (`terminate` as it was given), from any connection: a worker
   * drops those it holds unstarted in its prefetch, and aborts those it runs when `terminate` is set.
   * `ttlMs` is how long the broker holds each id revoked, the longest of its revokes (none: for ever).
   */
  onRevoke(listener: RevokeListener): Promise<() => void>;

  // Observability (optional: both built-in transports implement them; callers degrade without them).
  /** Where an unfinished task is, or null if the broker holds no such task (finished, unknown, expired). */
  describeTask?(id: string): Promise<TaskLocation | null>;
  /**
   * Append events (capped) and add counters. A failure that left one of the two stored throws
   * ActivityPublishError saying which; any other failure means neither was. Once the call has resolved,
   * `batch.events.data` is the caller's again (its memory is reused): nothing may read it later.
   */
  publishActivity?(batch: ActivityBatch): Promise<void>;
  /** The newest `limit` events, oldest first. */
  readEvents?(limit: number): Promise<StoredEvent[]>;
  /**
   * Counters of minutes >= sinceMinute. A minute or counter the broker holds in a form qworker never writes
   * (another program's data) is left out rather than failing the read, and `leftOut` is told in one line.
   */
  readCounters?(sinceMinute: number, leftOut?: (line: string) => void): Promise<CounterRow[]>;

  // Reliability (optional: only brokers with connections that can go silent or settings that lose data).
  /**
   * Drop and reopen connections that look healthy but are not answering (a socket that died without a
   * FIN); commands in flight are re-sent. Called by the worker's watchdog. Resolves with how many it
   * dropped: none when every connection is already reconnecting (the broker is plainly down).
   */
  reconnect?(): Promise<number>;
  /** One line per broker setting that puts tasks at risk (eviction, no persistence), for the worker to warn. */
  checkSettings?(): Promise<string[]>;
  /**
   * True when `err` is the broker refusing a call for the data it found (a key of another type: another
   * program's data under the prefix), not an outage: waiting or reconnecting changes nothing.
   */
  isDataError?(err: unknown): boolean;

  /**
   * Global rate limit, one run of `name` per `intervalMs` across all workers: 0 when task `taskId` may run
   * now, else the ms until the slot reserved for it (it is sent back to wait, then asks again).
   * Optional: a worker on a transport without it logs that the limit is not enforced.
   */
  rateLimit?(name: string, intervalMs: number, taskId: string): Promise<number>;
}
