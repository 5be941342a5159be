import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { LeaseRef, Reservation, TaskProgress, Transport, WorkerInfo } from "../broker/transport.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { NonRetryableError, NotRegisteredError, TaskRevokedError, WorkerShutdownError, type QWorkerError } from "../errors.ts";
import { decodeMessage, encodeMessage, type TaskMessage } from "../protocol/message.ts";
import { messageArgsPreview } from "../results/args.ts";
import { clampProgress, progressOf, waitingIds } from "../results/progress.ts";
import { encodeResult, errorInfo, roundRuntimeMs, type TaskResult } from "../results/record.ts";
import type { TaskDefinition } from "../tasks/definition.ts";
import type { TaskRegistry } from "../tasks/registry.ts";
import { VERSION } from "../version.ts";
import type { ExecLimits, ExecOutcome } from "./executor.ts";
import { WorkerEvents } from "./events.ts";
import { AsyncPool, type Pool, type PoolJob } from "./pool.ts";
import { messagePreview, ms, preview } from "./format.ts";
import { decideRetry, effectivePolicy } from "./retry-policy.ts";
import { LazyAbortController } from "./lazy-abort.ts";
import { LeaseTable } from "./lease-table.ts";
import { AutoPrefetch } from "./prefetch.ts";
import { Settler } from "./settler.ts";
import { ExecutionCounts } from "./execution-counts.ts";
import type { LeaseKeeper } from "./lease-keeper.ts";
import { RateLimiter } from "./rate-limit.ts";
import { RecentRevokes } from "./recent-revokes.ts";
import { collectStartupGarbage } from "./startup-gc.ts";

export interface WorkerOptions {
  transport: Transport;
  registry: TaskRegistry;
  config: QWorkerConfig;
  logger: Logger;
  /** Defaults to host.pid.random. */
  id?: string;
  /** Where handlers run (default: the async pool, in this process). */
  pool?: Pool;
  /** Renews leases and beats the heartbeat off the event loop (default: this worker's own timer does). */
  leaseKeeper?: LeaseKeeper;
}

/** One leased task, from reservation to settlement: the only per-task record the worker keeps. */
interface Running {
  ref: LeaseRef;
  res: Reservation;
  controller: AbortController;
  msg?: TaskMessage;
  /** When this process got the lease. */
  acceptedAt: number;
  /** Its handler was called (a prefetched task waits unstarted). */
  started: boolean;
  /** Its `received` log line and event are out: at once for a task that went to the prefetch list. */
  announced: boolean;
  /** Its outcome is known and on its way to the broker. */
  finished: boolean;
  /**
   * Another worker took its lease; the run was told. A handler that ignores its signal goes on through
   * later renewals, and each would otherwise report the same loss again.
   */
  leaseLost: boolean;
  startedAt: number;
  /** Latest ctx.progress() report; travels with the next heartbeat (that is the throttle). */
  progress?: TaskProgress;
  /** Its place in the worker's LeaseTable; -1 once out of it. */
  slot: number;
}

/**
 * One worker daemon's engine: a fetch loop that reserves as many tasks as it has free slots, runs them in
 * this process (the async pool), settles them in batches, and a single housekeeping timer that renews
 * leases, beats the heartbeat and runs the broker's recovery sweep. It holds no task only in memory: what
 * it has reserved is leased in the broker and comes back if this process dies.
 */
export class Worker {
  readonly id: string;
  readonly events = new WorkerEvents();
  readonly pool: Pool;
  private readonly transport: Transport;
  private readonly registry: TaskRegistry;
  private readonly config: QWorkerConfig;
  private readonly logger: Logger;
  private readonly settler: Settler<Running>;
  private readonly keeper: LeaseKeeper | undefined;
  private readonly rateLimiter: RateLimiter;
  private readonly counts: ExecutionCounts;
  private readonly leased = new LeaseTable<Running>();
  private running = 0;
  private stopping = false;
  /** Fetch lanes waiting for a free slot (or for a backlog, lane 1). */
  private slotWaiters: (() => void)[] = [];
  /** Tasks that reserve calls now in flight may return. */
  private requested = 0;
  /** The last reserve came back full: the queue has a backlog, so the second lane fetches ahead. */
  private backlog = false;
  private backlogWaiter: (() => void) | undefined;
  /** Reserved beyond the free slots (prefetch), oldest first; also in `leased`. */
  private readonly prefetched: Running[] = [];
  /** Tasks whose start was asked for while another start was on the stack (see startTask). */
  private readonly startQueue: Running[] = [];
  private starting = false;
  /** Time limits per task definition, for the common message that sets none of its own. */
  private readonly defLimits = new WeakMap<TaskDefinition, ExecLimits>();
  /**
   * Leases this worker gave up on but could not hand back (the broker did not answer). The broker still
   * lists them as this worker's, so the lease keeper would renew them for as long as it runs: the
   * housekeeping timer hands them back once the broker answers, and they are delivered again.
   */
  private stranded: LeaseRef[] = [];
  /** Ids the last lease renewal listed that this process does not hold (see leasesRenewed). */
  private orphanSuspects = new Set<string>();
  /** Revokes heard lately, for a task that was not in the prefetch when its revoke came (recent-revokes.ts). */
  private readonly recentRevokes = new RecentRevokes();
  private readonly autoPrefetch: AutoPrefetch;
  private loopDone: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Every task finished (settled with an outcome, or dead-lettered undecodable); succeeded and failed are part of it. */
  private processed = 0;
  private succeeded = 0;
  private failed = 0;
  private readonly startedAt = Date.now();
  private lastProgress = Date.now();
  private outageSince: number | undefined;
  /** The last call the broker refused for its data (see brokerRefused), and when it was logged. */
  private refusedWith = "";
  private refusedLoggedAt = -Infinity;
  // Deadlines in epoch ms. They start at -Infinity ("due now"), not 0: V8 stores a field that starts as a
  // small integer as one, and the first timestamp written into it (at the first tick, mid-drain on a busy
  // worker) gives every Worker a new hidden class, which throws away the optimised code of the hot methods.
  private nextBeat = -Infinity;
  private nextRenew = -Infinity;
  private nextRecover = -Infinity;
  private housekeeping = false;
  private unsubscribeRevoke: (() => void) | undefined;

  constructor(opts: WorkerOptions) {
    this.transport = opts.transport;
    this.registry = opts.registry;
    this.config = opts.config;
    this.logger = opts.logger;
    this.pool = opts.pool ?? new AsyncPool();
    this.id = opts.id ?? `${hostname()}.${process.pid}.${randomBytes(3).toString("hex")}`;
    this.settler = new Settler<Running>(this.transport, this.logger, (_items, owners) => {
      for (const t of owners) this.leased.remove(t);
      this.lastProgress = Date.now();
    });
    this.keeper = opts.leaseKeeper;
    this.rateLimiter = new RateLimiter(this.transport, this.logger, this.events, (ref) => this.stranded.push(ref));
    this.counts = new ExecutionCounts(this.events);
    this.autoPrefetch = new AutoPrefetch(this.config.concurrency);
  }

  get leaseMs(): number {
    return this.config.lease_timeout * 1000;
  }

  info(): WorkerInfo {
    const info: WorkerInfo = {
      id: this.id,
      host: hostname(),
      pid: process.pid,
      concurrency: this.config.concurrency,
      pool: this.config.pool,
      queues: this.config.queues,
      startedAt: this.startedAt,
      lastBeat: Date.now(),
      processed: this.processed,
      succeeded: this.succeeded,
      failed: this.failed,
      active: this.running,
      version: VERSION,
      progress: progressOf(this.leased.values()),
      counts: this.counts.snapshot(),
    };
    const waiting = waitingIds(this.prefetched);
    if (waiting) info.waiting = waiting;
    return info;
  }

  private prepared: Promise<void> | undefined;

  /**
   * Everything before consuming: register the worker (first heartbeat), start the lease keeper, subscribe
   * to control messages, then collect start-up's garbage (startup-gc.ts). start() calls it; calling it
   * first (as the benchmark does, like BullMQ's waitUntilReady) only moves this one-off work earlier.
   */
  ready(): Promise<void> {
    this.prepared ??= (async () => {
      await this.transport.heartbeat(this.info(), this.config.heartbeat_ttl * 1000);
      if (this.keeper) {
        this.keeper.onRenewed((startedAt, ids) => this.leasesRenewed(startedAt, ids));
        await this.keeper.start(this.id);
        this.keeper.beat(this.info());
      }
      this.unsubscribeRevoke = await this.transport.onRevoke((ids, terminate, ttlMs) => this.revoked(ids, terminate, ttlMs));
      const gcMs = collectStartupGarbage();
      if (gcMs !== undefined) this.logger.debug(`start-up garbage collected in ${gcMs.toFixed(1)} ms`);
    })();
    return this.prepared;
  }

  /** Register (see ready()), then run the fetch loop in the background until stop() is called. */
  async start(): Promise<void> {
    await this.ready();
    this.timer = setInterval(() => void this.tick(), 250);
    this.timer.unref();
    this.loopDone = Promise.all([this.fetchLoop(0), this.fetchLoop(1)]).then(() => {});
  }

  /** Time of the last successful broker exchange or finished task (for health checks). */
  get lastProgressAt(): number {
    return this.lastProgress;
  }

  /**
   * Two lanes reserve tasks. Lane 0 always runs and, when nothing is ready, blocks in the broker until
   * something is. Lane 1 runs only while there is a backlog (the last batch came back full) and never
   * blocks: it asks for the next batch while this process is still running the current one, so Redis
   * and this worker work at the same time instead of taking turns (short tasks finish within the turn
   * that started them, so one lane alone would always leave one side idle). Each asks for at most half
   * of the slots plus prefetch, and what both have in flight never exceeds that budget.
   */
  private async fetchLoop(lane: 0 | 1): Promise<void> {
    while (!this.stopping) {
      const budget = this.config.concurrency + (this.config.prefetch ?? this.autoPrefetch.target());
      const want = budget - this.running - this.prefetched.length - this.requested;
      if (lane === 1 && !this.backlog) {
        await new Promise<void>((resolve) => (this.backlogWaiter = resolve));
        continue;
      }
      if (want <= 0) {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
        continue;
      }
      const ask = budget > 1 && (lane === 1 || this.backlog) ? Math.min(want, Math.ceil(budget / 2)) : want;
      let got: Reservation[];
      this.requested += ask;
      // Whether the event loop turned while reserve() was pending (see below).
      let turned = false;
      const probe = setImmediate(() => (turned = true));
      try {
        got = await this.transport.reserve({
          queues: this.config.queues,
          max: ask,
          leaseMs: this.leaseMs,
          workerId: this.id,
          waitMs: lane === 0 ? 1000 : 0,
          resultTtlMs: this.config.result_expires * 1000,
        });
        this.brokerOk();
      } catch (err) {
        this.brokerDown(err);
        await new Promise((r) => setTimeout(r, 250));
        continue;
      } finally {
        this.requested -= ask;
        // The other lane may be waiting because this request held the last free slot's share of the budget:
        // it must look again now, not when a running task ends (with one slot free and long tasks in the
        // others, a task sent meanwhile waited for the longest of them). It runs after accept() below.
        this.wakeLanes();
      }
      if (this.stopping) {
        await this.transport.release(got.map(({ id, token, queue }) => ({ id, token, queue }))).catch(() => {});
        break;
      }
      const wasBacklog = this.backlog;
      this.backlog = got.length === ask && ask > 0;
      if (this.backlog && !wasBacklog) this.wakeBacklogLane();
      this.accept(got);
      // A transport that answers without I/O (SQLite) resolves reserve() in a microtask, so with a backlog
      // this loop alone would never let the event loop turn: no settle, timer or socket callback until the
      // queue ran dry (every result recorded at the very end, every finished task leased until then).
      if (!turned && got.length > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      clearImmediate(probe);
    }
  }

  /** Lease bookkeeping for a reserved batch, then start what fits in the free slots. */
  private accept(got: Reservation[]): void {
    if (got.length === 0) return;
    const now = Date.now();
    const batch: Running[] = new Array<Running>(got.length);
    for (let i = 0; i < got.length; i++) {
      const r = got[i]!;
      const t: Running = {
        ref: { id: r.id, token: r.token, queue: r.queue },
        res: r,
        controller: new LazyAbortController(),
        acceptedAt: now,
        started: false,
        announced: false,
        finished: false,
        leaseLost: false,
        startedAt: now,
        slot: -1,
        // Present from the start, so every record has one shape (a field added later gives the record a
        // second hidden class, and the hot functions that meet both are deoptimised and compiled again).
        msg: undefined,
        progress: undefined,
      };
      batch[i] = t;
      this.leased.add(t);
    }
    const revokes = this.recentRevokes.size > 0;
    // The lease keeper needs no word of these: it renews whatever the broker leased to this worker, so a
    // handler below that blocks the event loop at once still keeps its lease.
    for (const t of batch) {
      // Revoked after the broker leased it to us, and the revoke was read before this reply.
      if (revokes && this.recentRevokes.has(t.ref.id) && this.dropRevoked(t, "before it started")) continue;
      if (this.running < this.config.concurrency) this.startTask(t);
      // Leased (and renewed) like a running task; started when a slot frees.
      else if (this.announce(t)) this.prefetched.push(t);
    }
  }

  /**
   * A prefetched task has been received even though it starts later, and says so now, as a Celery worker
   * logs "received" for the messages it prefetches: a monitor sees it waiting here, not only once it
   * runs. One that cannot be decoded is dead-lettered now, and one naming an unknown task fails now, as a
   * Celery worker discards an unregistered task on receipt: neither waits for a slot it would never use.
   * False for those two (they do not go into the prefetch list).
   */
  private announce(t: Running): boolean {
    let msg: TaskMessage;
    try {
      msg = this.decode(t.res);
    } catch (err) {
      this.poisoned(t, err, false);
      return false;
    }
    t.msg = msg;
    if (!this.registry.get(msg.task)) {
      this.notRegistered(t, msg);
      return false;
    }
    this.received(t, msg);
    return true;
  }

  /** The task message of a reservation; throws (the reason to dead-letter it) if it is too large or malformed. */
  private decode(r: Reservation): TaskMessage {
    if (r.payload.length > this.config.max_payload_bytes) {
      throw new Error(`payload of ${r.payload.length} bytes exceeds max_payload_bytes (${this.config.max_payload_bytes})`);
    }
    return decodeMessage(r.payload);
  }

  private received(t: Running, msg: TaskMessage): void {
    t.announced = true;
    const deliveries = t.res.deliveries;
    if (this.logger.isLevelEnabled("info")) this.logger.info(`task ${msg.task}[${msg.id}] received${deliveries > 1 ? ` (delivery ${deliveries})` : ""}`);
    this.events.safeEmit("task:received", msg, deliveries, t.acceptedAt);
  }

  private wakeBacklogLane(): void {
    const w = this.backlogWaiter;
    this.backlogWaiter = undefined;
    w?.();
  }

  private wakeLanes(): void {
    if (this.slotWaiters.length === 0) return;
    const waiters = this.slotWaiters;
    this.slotWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * The keeper renewed every lease the broker holds for this worker. A lease this process took before
   * the renewal began and still needs, but the broker no longer lists, was recovered by another worker
   * (this one looked dead, or its lease lapsed): abort that run, and drop it if it never started.
   *
   * The other way round, a lease the broker lists but this process does not hold is an orphan: a reserve
   * that ran in the broker while its reply was lost (the connection died in between, or the client sent
   * the call again after reconnecting). The keeper would renew it, and the task would wait, for as long as
   * this worker lives. An id seen unheld in two renewals in a row is handed back: a renewal period (a third
   * of lease_timeout) is far longer than any reply that is merely late.
   */
  private leasesRenewed(startedAt: number, ids: string[]): void {
    const held = new Set(ids);
    const mine = new Set<string>();
    // A margin for a reserve that crossed the renewal request on the way to the broker.
    const before = startedAt - 1000;
    for (const t of this.leased.values()) {
      mine.add(t.ref.id);
      if (t.finished || t.leaseLost || t.acceptedAt > before || held.has(t.ref.id)) continue;
      t.leaseLost = true;
      this.logger.warn(`task ${t.msg?.task ?? "?"}[${t.ref.id}]: lease lost (recovered by another worker); aborting this run`);
      t.controller.abort(new Error("lease lost"));
      if (!t.started) {
        const at = this.prefetched.indexOf(t);
        if (at >= 0) this.prefetched.splice(at, 1);
        this.leased.remove(t);
      }
    }
    const suspects = new Set<string>();
    const orphans: string[] = [];
    for (const id of ids) {
      if (mine.has(id)) continue;
      if (this.orphanSuspects.has(id)) orphans.push(id);
      else suspects.add(id);
    }
    this.orphanSuspects = suspects;
    if (orphans.length > 0 && this.transport.releaseOrphans) {
      this.transport.releaseOrphans(this.id, orphans).then(
        (n) => {
          if (n > 0) this.logger.warn(`handed back ${n} task(s) the broker had leased to this worker without its hearing of it (a reply lost in a broker outage)`);
        },
        // Still listed by the broker: suspects again at the next renewal, handed back at the one after.
        (err: unknown) => this.logger.debug({ err }, "handing back orphaned leases failed"),
      );
    }
  }

  private brokerOk(): void {
    this.lastProgress = Date.now();
    if (this.outageSince !== undefined) {
      const downFor = Date.now() - this.outageSince;
      this.logger.warn(`broker reachable again after ${ms(downFor)}; consuming`);
      this.events.safeEmit("broker:up", downFor);
      this.outageSince = undefined;
      this.nextRenew = -Infinity; // renew at once: the outage may have eaten into our leases
    }
  }

  private brokerDown(err: unknown): void {
    if (this.transport.isDataError?.(err)) return this.brokerRefused(err as Error);
    if (this.outageSince === undefined) {
      this.outageSince = Date.now();
      this.logger.error(`broker unreachable (${(err as Error).message}); retrying until it answers`);
      this.events.safeEmit("broker:down", err as Error);
    }
  }

  /**
   * The broker answered but refused the call for the data it found: a key under the prefix holds another
   * program's data. Not an outage (reconnecting changes nothing), and the same refusal comes back with
   * every retry, so it is logged once a minute. The recovery sweep sets qworker's queue and global keys
   * aside and logs each; what it cannot repair stays in this line until someone does.
   */
  private brokerRefused(err: Error): void {
    this.brokerOk();
    const now = Date.now();
    if (err.message === this.refusedWith && now - this.refusedLoggedAt < 60_000) return;
    this.refusedWith = err.message;
    this.refusedLoggedAt = now;
    const why = err.message.startsWith("BADKEY ")
      ? err.message.slice(7)
      : `${err.message}: a key under redis_prefix holds another program's data; the recovery sweep sets queue keys and qworker's global keys aside within a second and logs which, any other key needs deleting by hand`;
    this.logger.error(`broker refused a call (${why})`);
  }

  /**
   * Start a task now. Synchronous handlers finish inside this call and free their slot, which starts the
   * next prefetched task; a start asked for while another is on the stack is queued and run by the
   * outermost call, so a long prefetch list is a loop, never deep recursion.
   */
  private startTask(t: Running): void {
    this.running++;
    if (this.starting) {
      this.startQueue.push(t);
      return;
    }
    this.starting = true;
    try {
      this.begin(t);
      for (let next = this.startQueue.shift(); next; next = this.startQueue.shift()) this.begin(next);
    } finally {
      this.starting = false;
    }
  }

  private begin(t: Running): void {
    try {
      this.handle(t);
    } catch (err) {
      this.internalError(t, err);
    }
  }

  private slotFreed(): void {
    this.running--;
    // A prefetched task takes the slot at once; on shutdown it stays leased here and is handed back.
    const next = this.stopping ? undefined : this.prefetched.shift();
    if (next) this.startTask(next);
    this.wakeLanes();
  }

  private handle(t: Running): void {
    let msg = t.msg; // decoded already if announce() told of it
    if (!msg) {
      try {
        msg = this.decode(t.res);
      } catch (err) {
        this.poisoned(t, err);
        return;
      }
      t.msg = msg;
    }
    const def = this.registry.get(msg.task);
    if (!def) {
      this.notRegistered(t, msg);
      this.slotFreed();
      return;
    }
    if (msg.expires !== undefined && Date.now() > msg.expires) {
      // A time no Date can hold (a foreign sender's) is shown as sent: toISOString() would throw here.
      const at = new Date(msg.expires);
      this.logger.warn(`task ${msg.task}[${msg.id}] expired at ${Number.isNaN(at.getTime()) ? msg.expires : at.toISOString()}; not run`);
      this.events.safeEmit("task:expired", msg);
      this.finish(msg, t, "EXPIRED", {});
      this.slotFreed();
      return;
    }
    if (def.options.rateLimit !== undefined) {
      this.rateLimited(t, def, msg).catch((err: unknown) => this.internalError(t, err));
      return;
    }
    this.run(t, def, msg);
  }

  /**
   * A task this worker has no definition for fails for good without running. It reports what any task
   * that fails for good reports, received then failed (final, run time 0; never started), so the events
   * stream, `inspect stats` and the metrics (as task="<unregistered>") count it like any other failure.
   */
  private notRegistered(t: Running, msg: TaskMessage): void {
    const err = new NotRegisteredError(msg.task);
    // No task code ran: the stack would show only the worker's own frames to whoever reads the result.
    err.stack = `${err.name}: ${err.message}`;
    if (!t.announced) this.received(t, msg);
    this.logger.error(`task ${msg.task}[${msg.id}] failed: ${err.message} (registered: ${this.registry.names().join(", ") || "none"})`);
    this.events.safeEmit("task:failed", msg, err, 0, true);
    this.finish(msg, t, "FAILURE", { error: errorInfo(err) }, `not registered: ${msg.task}`);
    this.failed++;
  }

  /** Dead-letter a reservation that cannot be decoded; `holdsSlot` when it had taken a slot to free. */
  private poisoned(t: Running, err: unknown, holdsSlot = true): void {
    const r = t.res;
    const reason = `undecodable message: ${(err as Error).message}`;
    this.logger.error(`task ${r.id} in queue ${r.queue} dead-lettered: ${reason}`);
    this.events.safeEmit("task:poisoned", r.id, r.queue, reason);
    this.processed++;
    this.failed++;
    this.transport
      .deadLetter([{ ...t.ref, reason }])
      .catch((e: unknown) => {
        this.logger.debug({ err: e }, "dead-letter failed");
        this.stranded.push(t.ref);
      })
      .finally(() => {
        this.leased.remove(t);
        if (holdsSlot) this.slotFreed();
      });
  }

  private async rateLimited(t: Running, def: TaskDefinition, msg: TaskMessage): Promise<void> {
    if (await this.rateLimiter.deferred(def, msg, t.ref)) {
      this.leased.remove(t);
      this.slotFreed();
      return;
    }
    // Revoked while its rate-limit check was on its way to the broker.
    if (this.recentRevokes.has(t.ref.id) && this.dropRevoked(t, "while it waited for its rate limit")) {
      this.slotFreed();
      return;
    }
    this.run(t, def, msg);
  }

  private run(t: Running, def: TaskDefinition, msg: TaskMessage): void {
    // Issue 2 asks for one line per event at info (received, started, then succeeded/failed), as an
    // operator tailing the log expects; at `warning` they cost nothing (bench/README.md has the figures).
    t.started = true;
    if (!t.announced) this.received(t, msg);
    const infoOn = this.logger.isLevelEnabled("info");
    const deliveries = t.res.deliveries;
    t.startedAt = Date.now();
    if (infoOn) this.logger.info(`task ${msg.task}[${msg.id}] started`);
    this.events.safeEmit("task:started", msg);
    const job: PoolJob = {
      def,
      msg,
      deliveries,
      controller: t.controller,
      logger: this.logger,
      limits: this.limitsFor(def, msg),
      progress: (fraction, note) => {
        t.progress = clampProgress(fraction, note);
        this.events.safeEmit("task:progress", msg, fraction, note);
      },
    };
    const done = (outcome: ExecOutcome): void => this.completed(t, def, msg, outcome);
    if (this.pool.runNow) this.pool.runNow(job, done);
    else this.pool.run(job).then(done, (err: unknown) => this.internalError(t, err));
  }

  private limitsFor(def: TaskDefinition, msg: TaskMessage): ExecLimits {
    if (msg.timeLimitMs === undefined && msg.softTimeLimitMs === undefined) {
      let limits = this.defLimits.get(def);
      if (!limits) this.defLimits.set(def, (limits = this.computeLimits(def, msg)));
      return limits;
    }
    return this.computeLimits(def, msg);
  }

  private computeLimits(def: TaskDefinition, msg: TaskMessage): ExecLimits {
    const limit = (own: number | undefined, task: number | undefined, dflt: number | undefined) =>
      own ?? (task !== undefined ? task * 1000 : dflt !== undefined ? dflt * 1000 : undefined);
    const timeLimitMs = limit(msg.timeLimitMs, def.options.timeLimit, this.config.time_limit);
    const softTimeLimitMs = limit(msg.softTimeLimitMs, def.options.softTimeLimit, this.config.soft_time_limit);
    return {
      ...(timeLimitMs ? { timeLimitMs } : {}),
      ...(softTimeLimitMs ? { softTimeLimitMs } : {}),
    };
  }

  /** The handler is done: record the outcome and free the slot (at once for a success). */
  private completed(t: Running, def: TaskDefinition, msg: TaskMessage, outcome: ExecOutcome): void {
    try {
      this.autoPrefetch.observe(outcome.runtimeMs);
      if (outcome.kind === "success") {
        // Encoded before it is logged or counted: a value JSON cannot hold (a BigInt, a cycle) is the task's
        // failure, reported and dead-lettered as one, not a success that stores a FAILURE record.
        const record = this.resultRecord(msg, t, "SUCCESS", { result: outcome.value, runtimeMs: roundRuntimeMs(outcome.runtimeMs) }, def);
        let encoded: string | undefined;
        try {
          encoded = record && encodeResult(record);
        } catch (err) {
          outcome = {
            kind: "failure",
            error: new NonRetryableError(`result is not JSON-serializable (${(err as Error).message}): return plain data, or a reference to where the data is kept`),
            runtimeMs: outcome.runtimeMs,
          };
        }
        if (outcome.kind === "success") {
          this.succeeded++;
          if (this.logger.isLevelEnabled("info")) this.logger.info(`task ${msg.task}[${msg.id}] succeeded in ${ms(outcome.runtimeMs)}: ${preview(outcome.value)}`);
          this.events.safeEmit("task:succeeded", msg, outcome.value, outcome.runtimeMs);
          this.settle(msg, t, "SUCCESS", encoded);
          this.slotFreed();
          return;
        }
      }
    } catch (err) {
      this.internalError(t, err);
      return;
    }
    this.concludeUnsuccessful(def, msg, t, outcome).then(
      () => this.slotFreed(),
      (err: unknown) => this.internalError(t, err),
    );
  }

  private async concludeUnsuccessful(def: TaskDefinition, msg: TaskMessage, running: Running, outcome: Exclude<ExecOutcome, { kind: "success" }>): Promise<void> {
    const label = `${msg.task}[${msg.id}]`;
    // Handed back by stop(): the handler failing because it was told to stop is not an attempt, and must
    // not use up a retry (nor, at the last one, dead-letter the task) in a race with the hand-back.
    if (running.controller.signal.reason instanceof WorkerShutdownError) {
      this.logger.debug(`task ${label} stopped for the shutdown after ${ms(outcome.runtimeMs)}: ${messagePreview(outcome.error.message)}`);
      return;
    }
    if (running.controller.signal.reason instanceof TaskRevokedError) {
      this.logger.warn(`task ${label} revoked: terminated after ${ms(outcome.runtimeMs)}`);
      this.events.safeEmit("task:revoked", msg);
      this.finish(msg, running, "REVOKED", { runtimeMs: roundRuntimeMs(outcome.runtimeMs) }, undefined, def);
      return;
    }
    const policy = effectivePolicy(this.config.retry, def.options, msg.maxRetries);
    const decision =
      outcome.kind === "retry"
        ? { retry: msg.retries < policy.max, delaySec: outcome.countdownSec ?? policy.countdown, max: policy.max }
        : decideRetry(policy, msg.retries, outcome.error, def.options.retryOn);
    if (decision.retry) {
      const dueAt = Date.now() + decision.delaySec * 1000;
      // The next attempt is due when its backoff ends: as its eta, queue-wait figures (the task-received
      // event's waitMs, the metrics histogram) start from there, not from the first send.
      const next: TaskMessage = { ...msg, retries: msg.retries + 1, eta: dueAt };
      this.logger.warn(`task ${label} retry ${msg.retries + 1}/${decision.max} in ${decision.delaySec.toFixed(1)} s: ${messagePreview(outcome.error.message)}`);
      this.events.safeEmit("task:failed", msg, outcome.error, outcome.runtimeMs, false);
      this.events.safeEmit("task:retry", msg, outcome.error, decision.delaySec);
      try {
        await this.transport.retry({
          ...running.ref,
          priority: msg.priority,
          payload: encodeMessage(next),
          dueAt,
        });
        this.leased.remove(running);
      } catch (err) {
        // Handed back once the broker answers, so the attempt is delivered again and not lost.
        this.logger.error(`task ${label}: could not schedule its retry (${(err as Error).message}); it will be redelivered`);
        this.leased.remove(running);
        this.stranded.push(running.ref);
      }
      return;
    }
    this.failed++;
    const err = outcome.error;
    const code = (err as Partial<QWorkerError>).code;
    this.logger.error(
      { ...(this.logger.isLevelEnabled("debug") ? { err } : {}) },
      `task ${label} failed${msg.retries > 0 ? ` after ${msg.retries} retries` : ""}: ${err.name}: ${messagePreview(err.message)}${code ? ` (${code})` : ""}`,
    );
    this.events.safeEmit("task:failed", msg, err, outcome.runtimeMs, true);
    const reason = msg.retries > 0 ? `failed after ${msg.retries} retries: ${err.message}` : `failed: ${err.message}`;
    this.finish(msg, running, "FAILURE", { error: errorInfo(err), runtimeMs: roundRuntimeMs(outcome.runtimeMs) }, reason, def);
  }

  /** Record the outcome: result (unless ignored) and settle, batched with others finishing now. */
  private finish(
    msg: TaskMessage,
    running: Running,
    state: TaskResult["state"],
    extra: Partial<TaskResult>,
    deadReason?: string,
    def?: TaskDefinition,
  ): void {
    const record = this.resultRecord(msg, running, state, extra, def);
    // Kept with the dead task too: its result expires (a day by default) long before the dead entry (a week).
    const deadError = deadReason !== undefined && extra.error ? `${extra.error.type}: ${extra.error.message}` : undefined;
    this.settle(msg, running, state, record ? safeEncodeResult(record) : undefined, deadReason, deadError);
  }

  /** The result record to store, or undefined for an ignored success (its record and args preview are not built at all). */
  private resultRecord(msg: TaskMessage, running: Running, state: TaskResult["state"], extra: Partial<TaskResult>, def?: TaskDefinition): TaskResult | undefined {
    const ignore = msg.ignoreResult ?? def?.options.ignoreResult ?? false;
    if (ignore && state === "SUCCESS") return undefined;
    return {
      id: msg.id,
      state,
      task: msg.task,
      queue: msg.queue,
      retries: msg.retries,
      worker: this.id,
      sentAt: msg.sentAt,
      startedAt: running.startedAt,
      finishedAt: Date.now(),
      argsPreview: messageArgsPreview(msg, (def ?? this.registry.get(msg.task))?.options.secretArgs),
      ...extra,
    };
  }

  private settle(msg: TaskMessage, running: Running, state: TaskResult["state"], result: string | undefined, deadReason?: string, deadError?: string): void {
    const ref = running.ref;
    running.finished = true;
    // Every final outcome passes here once (success, failure, revoked, expired), so `processed` is their sum.
    this.processed++;
    // One object shape for every item: the settle path stays monomorphic.
    this.settler.add({
      id: ref.id,
      token: ref.token,
      queue: ref.queue,
      outcome: state === "SUCCESS" ? "SUCCESS" : state === "EXPIRED" ? "EXPIRED" : state === "REVOKED" ? "REVOKED" : "FAILURE",
      resultTtlMs: this.config.result_expires * 1000,
      result,
      deadReason,
      deadError,
      uniqueKey: msg.uniqueKey,
    }, running);
  }

  /**
   * A bug or an unexpected throw while handling a reservation must not crash the daemon (an unhandled
   * rejection would) nor strand the slot: log it and hand the task back so it is not lost.
   */
  private internalError(t: Running, err: unknown): void {
    this.logger.error({ err }, `internal error while handling task ${t.ref.id}: ${(err as Error).message}; handing it back`);
    if (this.leased.remove(t)) {
      this.transport.release([t.ref]).catch(() => this.stranded.push(t.ref));
    }
    this.slotFreed();
  }

  /**
   * A revoke was published. The broker leaves a leased task to its worker, so a task waiting here
   * unstarted in the prefetch list is finished as REVOKED now and never runs, as a Celery worker skips
   * revoked requests it has reserved; a running one is aborted only when the revoke says terminate.
   */
  private revoked(ids: string[], terminate: boolean, ttlMs?: number): void {
    this.logger.debug(`revoke heard for ${ids.length} task(s)${terminate ? " (terminate)" : ""}`);
    // By lease id, which differs from the task id for Celery messages (src/celery).
    this.recentRevokes.note(ids, ttlMs);
    const wanted = new Set(ids);
    let dropped = false;
    for (const t of this.leased.values()) {
      const id = t.ref.id;
      if (!wanted.has(id) || !t.msg || t.finished) continue;
      const waiting = this.prefetched.indexOf(t);
      if (waiting >= 0) {
        this.prefetched.splice(waiting, 1);
        dropped = true;
        this.dropRevoked(t, "while waiting in the prefetch");
      } else if (terminate && t.started) {
        // The task's own id: a Celery message's lease id is not the one its caller knows.
        this.logger.warn(`task ${t.msg.task}[${t.msg.id}] revoked with --terminate; aborting it`);
        t.controller.abort(new TaskRevokedError(t.msg.id));
      }
    }
    // Room in the prefetch budget: the fetch loop may ask for more.
    if (dropped) this.wakeLanes();
  }

  /**
   * Finish a task revoked before it started as REVOKED, without running it. False when it has no message
   * to finish it with (it cannot be decoded): handle() then dead-letters it as usual.
   */
  private dropRevoked(t: Running, when: string): boolean {
    let msg = t.msg;
    if (!msg) {
      try {
        msg = this.decode(t.res);
      } catch {
        return false;
      }
      t.msg = msg;
    }
    this.logger.warn(`task ${msg.task}[${msg.id}] revoked ${when}; not run`);
    this.events.safeEmit("task:revoked", msg);
    this.finish(msg, t, "REVOKED", {});
    return true;
  }

  /** One shared timer for everything periodic, so nothing here costs a timer per task. */
  private async tick(): Promise<void> {
    if (this.housekeeping) return;
    this.housekeeping = true;
    const now = Date.now();
    this.recentRevokes.prune(now);
    try {
      if (!this.keeper && now >= this.nextRenew && this.leased.size > 0) {
        this.nextRenew = now + this.leaseMs / 3;
        const lost = new Set(await this.transport.extendLeases(this.leased.values().map((l) => l.ref), this.leaseMs));
        for (const l of this.leased.values()) {
          if (!lost.has(l.ref.id) || l.leaseLost) continue;
          l.leaseLost = true;
          this.logger.warn(`task ${l.msg?.task ?? "?"}[${l.ref.id}]: lease lost (recovered by another worker); aborting this run`);
          l.controller.abort(new Error("lease lost"));
        }
      }
      if (this.stranded.length > 0) {
        const refs = this.stranded;
        this.stranded = [];
        // Release ignores a lease that changed hands meanwhile, so handing back late is always safe.
        await this.transport.release(refs).catch((err: unknown) => {
          this.stranded.push(...refs);
          throw err;
        });
        this.logger.warn(`handed back ${refs.length} task(s) that could not be handed back earlier`);
      }
      if (this.keeper) this.keeper.beat(this.info());
      else if (now >= this.nextBeat) {
        this.nextBeat = now + this.config.heartbeat_interval * 1000;
        await this.transport.heartbeat(this.info(), this.config.heartbeat_ttl * 1000);
      }
      if (now >= this.nextRecover) {
        this.nextRecover = now + 1000;
        const rep = await this.transport.recover({
          maxDeliveries: this.config.max_deliveries,
          heartbeatTtlMs: this.config.heartbeat_ttl * 1000,
          deadMax: this.config.dead_letter_max,
          deadTtlMs: this.config.dead_letter_ttl * 1000,
        });
        if (rep.recovered > 0) this.logger.warn(`recovered ${rep.recovered} task(s) from expired leases or dead workers`);
        if (rep.deadLettered > 0) this.logger.error(`dead-lettered ${rep.deadLettered} task(s) that exceeded max_deliveries=${this.config.max_deliveries}`);
        for (const line of rep.poisoned ?? []) this.logger.error(line);
      }
      this.brokerOk();
      this.events.safeEmit("worker:tick");
    } catch (err) {
      this.brokerDown(err);
      this.nextRenew = -Infinity;
      // The broker answered: the watchdog must not take a refusal for silence and rebuild connections.
      if (this.transport.isDataError?.(err)) this.events.safeEmit("worker:tick");
    } finally {
      this.housekeeping = false;
    }
  }

  /**
   * Warm shutdown: stop fetching, let running tasks finish within shutdown_timeout, then hand back what is
   * still running (to the front of its queue, at once) and deregister. `cold` hands everything back now.
   */
  async stop(opts: { cold?: boolean } = {}): Promise<void> {
    this.stopping = true;
    this.events.safeEmit("worker:stopping");
    this.wakeLanes();
    this.wakeBacklogLane();
    const deadline = Date.now() + (opts.cold ? 0 : this.config.shutdown_timeout * 1000);
    while (this.running > 0 && Date.now() < deadline && !this.coldRequested) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.loopDone;
    await this.settler.drained();
    const unfinished = this.leased.values().map((l) => l.ref);
    if (unfinished.length > 0) {
      for (const l of this.leased.values()) l.controller.abort(new WorkerShutdownError());
      await this.transport.release(unfinished).catch((err) => this.logger.error(`could not hand back ${unfinished.length} task(s): ${(err as Error).message}; they return when their lease expires`));
      this.logger.warn(`handed back ${unfinished.length} unfinished task(s) to the queue`);
    }
    if (this.timer) clearInterval(this.timer);
    this.unsubscribeRevoke?.();
    await this.pool.close();
    await this.keeper?.stop();
    await this.transport.removeWorker(this.id).catch(() => {});
  }

  private coldRequested = false;

  /** A second signal during a warm shutdown: stop waiting for running tasks. */
  requestCold(): void {
    this.coldRequested = true;
  }
}

/**
 * Results are stored as JSON. A value JSON cannot hold (a BigInt, a cycle) turns the outcome into a
 * FAILURE that says so, instead of an exception that would lose the task's outcome.
 */
function safeEncodeResult(record: TaskResult): string {
  try {
    return encodeResult(record);
  } catch (err) {
    const { result: _dropped, ...rest } = record;
    return encodeResult({
      ...rest,
      state: "FAILURE",
      error: { type: "TypeError", message: `result is not JSON-serializable: ${(err as Error).message}` },
    });
  }
}
