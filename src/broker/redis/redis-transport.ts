import { randomBytes } from "node:crypto";
import { ActivityPublishError, BrokerError } from "../../errors.ts";
import { decodeWorkerInfo } from "../worker-info.ts";
import type {
  ActiveTask,
  ActivityBatch,
  CounterRow,
  DeadLetterItem,
  DeadTask,
  EnqueueItem,
  EnqueueResult,
  LeaseRef,
  QueueCounts,
  RecoverOptions,
  RecoverReport,
  Reservation,
  ReserveRequest,
  RevokeListener,
  RevokeReport,
  RetryItem,
  ScheduledTask,
  SettleItem,
  StoredEvent,
  TaskLocation,
  Transport,
  WorkerInfo,
} from "../transport.ts";
import { closeConnection, maskUrl, openConnection, openSubscriber, type ChannelListeners, type RedisConnection } from "./connection.ts";
import { isClusterUrl } from "./url.ts";
import { clusterPrefix, Keys } from "./keys.ts";
import { parseLeaseRows } from "./lease-rows.ts";
import { releaseOrphans } from "./orphans.ts";
import { ReplicatedEnqueuer } from "./replicated-enqueue.ts";
import { runScript } from "./scripts.ts";
import { startWaitDeadline } from "../../results/wait-deadline.ts";
import { isDataError as isRedisDataError } from "./command-errors.ts";
import { PendingWaits, type PendingWait } from "./pending-waits.ts";
import { CatchUp } from "./catch-up.ts";
import { checkRedisSettings } from "./server-check.ts";

const DEFAULT_RESULT_TTL_MS = 86_400_000;
/** Tasks purge.lua removes per call: a few milliseconds of Redis time, so workers are not held up. */
const PURGE_STEP = 5000;
/**
 * Lease ids and lease queues of the Celery messages a worker takes from kombu start with this (see
 * leaseQueue in src/celery/consumer.ts and celery_claim.lua).
 */
const CELERY_LEASE_PREFIX = "celery:";
/** Revokes re-announced to this process's listeners after its subscriber reconnects: the newest ones held. */
const REVOKE_RESYNC_MAX = 10_000;
/** The expiry revoke.lua records for a revoke made for ever (ttlMs <= 0): see FOREVER there. */
const REVOKE_FOREVER = 1e15;

/** reserve.lua's compact reply: leaseUntil at [2], then per queue: name, count, count x (id, payload, deliveries). */
function parseCompactLeases(out: (string | number)[], tokenPrefix: string): Reservation[] {
  const leaseUntil = Number(out[2]);
  const tasks: Reservation[] = [];
  let k = 0;
  let i = 3;
  while (i + 1 < out.length) {
    const queue = String(out[i]);
    const end = i + 2 + Number(out[i + 1]) * 3;
    for (i += 2; i < end && i + 2 < out.length; i += 3) {
      k += 1;
      tasks.push({
        id: String(out[i]),
        queue,
        payload: String(out[i + 1]),
        token: tokenPrefix + k,
        deliveries: Number(out[i + 2]),
        leaseUntil,
      });
    }
  }
  return tasks;
}

/**
 * settle.lua's arguments: plain tasks (no result, dead reason or unique key, the bulk of a busy drain)
 * as two values each, grouped by queue; the rest as full 'F' records. `order[k]` is the index in `items`
 * of the k-th task sent (the positions settle.lua returns count in that order); null when it is the
 * identity (one queue, all plain: the usual case).
 */
function encodeSettle(prefix: string, items: SettleItem[]): { args: (string | number)[]; order: number[] | null } {
  const plain = new Map<string, number[]>();
  const full: number[] = [];
  items.forEach((it, i) => {
    if (!it.result && !it.deadReason && !it.uniqueKey) {
      const group = plain.get(it.queue);
      if (group) group.push(i);
      else plain.set(it.queue, [i]);
    } else {
      full.push(i);
    }
  });
  const args: (string | number)[] = [prefix];
  const order: number[] | null = plain.size === 1 && full.length === 0 ? null : [];
  for (const [queue, group] of plain) {
    args.push("P", queue, group.length);
    for (const i of group) {
      const it = items[i]!;
      args.push(it.id, it.token);
      order?.push(i);
    }
  }
  for (const i of full) {
    const it = items[i]!;
    args.push("F", it.id, it.token, it.queue, it.result ?? "", it.resultTtlMs, it.deadReason ?? "", it.uniqueKey ?? "", it.deadError ?? "");
    order?.push(i);
  }
  return { args, order };
}

export interface RedisTransportOptions {
  /** Key prefix; use a hash tag such as "{qw}:" on Redis Cluster so every key shares one slot. */
  prefix?: string;
  /** CLI commands fail fast during an outage; workers wait for Redis to come back. */
  failFast?: boolean;
  connectTimeoutMs?: number;
  /** With failFast: a command with no reply after this long fails (see command-errors.ts); unset: never. */
  commandTimeoutMs?: number;
  /** Without failFast: a connect that waits for Redis to load its data set says so (seconds left). */
  onLoading?: (etaSeconds: number | undefined) => void;
  /**
   * Enqueue returns once this many replicas have the tasks (WAIT), and throws ReplicationError when fewer
   * confirm within enqueueReplicaTimeoutMs. Unset or 0: as soon as the master has them.
   */
  enqueueMinReplicas?: number;
  enqueueReplicaTimeoutMs?: number;
  /**
   * TTL of the REVOKED result stored for a task revoked while it waits, and for one found revoked by a
   * reserve whose request names no TTL, in ms (<= 0: kept for ever). Configs set it from result_expires,
   * so a revoked task's result lives as long as any other; default one day, result_expires' own default.
   */
  resultTtlMs?: number;
}

/** A read's catch for a key of another kind (WRONGTYPE): `empty` stands for it; any other error is thrown. */
function skipWrongType<T>(empty: T): (err: unknown) => T {
  return (err) => {
    if (err instanceof Error && err.message.startsWith("WRONGTYPE")) return empty;
    throw err;
  };
}

/**
 * The production transport. Every state change is one Lua script (src/broker/redis/lua), so each batch
 * costs one round trip. Three connections at most: commands, a blocking one for BLPOP on the queues' wake
 * markers (opened on first blocking reserve), and a subscriber for results and control messages.
 */
export class RedisTransport implements Transport {
  readonly kind = "redis";
  readonly displayUrl: string;
  private readonly keys: Keys;
  /** See RedisTransportOptions.resultTtlMs. */
  private readonly resultTtlMs: number;
  private cmd?: RedisConnection;
  private blocker?: RedisConnection;
  private sub?: RedisConnection;
  /** enqueue_min_replicas: enqueues grouped under one WAIT (created on first use). */
  private replicated?: ReplicatedEnqueuer;
  private subReady?: Promise<RedisConnection>;
  private readonly channelListeners: ChannelListeners = new Map();
  /** Channels whose SUBSCRIBE has not been answered yet. */
  private readonly subscribing = new Map<string, Promise<void>>();
  private closed = false;
  /** Every pending waitForResult: close() ends them, a reconnect of the subscriber reads their results again. */
  private readonly resultWaits = new PendingWaits();
  /** Told again of every held revoke when the subscriber reconnects (see resyncRevokes). */
  private readonly revokeListeners = new Set<RevokeListener>();
  /** The reads of subscriberBack, tried again until they succeed. */
  private readonly catchUp = new CatchUp();
  /**
   * reserve.lua needs a token prefix unique per call (it recognises a re-sent call by it): a random base
   * per transport and a counter, rather than a call into the CSPRNG on every reserve.
   */
  private readonly tokenBase = randomBytes(6).toString("base64url");
  private tokenSeq = 0;

  constructor(
    private readonly url: string,
    private readonly opts: RedisTransportOptions = {},
  ) {
    this.displayUrl = maskUrl(url);
    const prefix = opts.prefix ?? "qw:";
    this.keys = new Keys(isClusterUrl(url) ? clusterPrefix(prefix) : prefix);
    this.resultTtlMs = opts.resultTtlMs ?? DEFAULT_RESULT_TTL_MS;
  }

  private connOpts() {
    const failFast = this.opts.failFast ?? false;
    return {
      connectTimeoutMs: this.opts.connectTimeoutMs ?? 3000,
      failFast,
      ...(failFast && this.opts.commandTimeoutMs ? { commandTimeoutMs: this.opts.commandTimeoutMs } : {}),
      ...(this.opts.onLoading ? { onLoading: this.opts.onLoading } : {}),
    };
  }

  async connect(): Promise<void> {
    if (!this.cmd) this.cmd = await openConnection(this.url, this.connOpts(), "qworker");
  }

  private get redis(): RedisConnection {
    // Past close(), ioredis would say only "Connection is closed."; say which broker, and why.
    if (this.closed) throw this.closedError();
    if (!this.cmd) throw new BrokerError("Redis transport used before connect()");
    return this.cmd;
  }

  private closedError(): BrokerError {
    return new BrokerError(`Redis broker ${this.displayUrl} is closed: it was used after close()`);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.catchUp.stop();
    // A wait for a result would otherwise never settle: its subscriber is gone, and its deadline may be hours off.
    this.resultWaits.abandonAll(this.closedError());
    const conns = [this.cmd, this.blocker, this.sub].filter((c): c is RedisConnection => c !== undefined);
    await Promise.all(conns.map((c) => closeConnection(c)));
  }

  async enqueue(items: EnqueueItem[]): Promise<EnqueueResult[]> {
    if (items.length === 0) return [];
    // enqueue.lua checks every queue's keys before it stores a task, so it is told the queues up front.
    const queues = new Set<string>();
    for (const it of items) queues.add(it.queue);
    const args: (string | number)[] = [this.keys.prefix, queues.size, ...queues];
    for (const it of items) {
      args.push(it.id, it.queue, it.priority, it.payload, it.dueAt ?? 0, it.uniqueKey ?? "", it.uniqueForMs ?? 0);
    }
    // The script answers with the duplicates only (position, id that will run); the rest ran as sent.
    const dups = (await this.runEnqueue(args, items)) as (string | number)[];
    const results: EnqueueResult[] = items.map((it) => ({ id: it.id, duplicate: false }));
    for (let i = 0; i < dups.length; i += 2) results[Number(dups[i]) - 1] = { id: String(dups[i + 1]), duplicate: true };
    return results;
  }

  private async runEnqueue(args: (string | number)[], items: EnqueueItem[]): Promise<unknown> {
    const wanted = this.opts.enqueueMinReplicas ?? 0;
    if (wanted <= 0) return runScript(this.redis, "enqueue", args);
    this.replicated ??= new ReplicatedEnqueuer(() => this.redis, wanted, this.opts.enqueueReplicaTimeoutMs ?? 1000);
    return this.replicated.enqueue(args, items.map((it) => it.id));
  }

  async reserve(req: ReserveRequest): Promise<Reservation[]> {
    const first = await this.reserveNow(req);
    if (first.tasks.length > 0 || req.waitMs <= 0 || this.closed) return first.tasks;
    let waitMs = req.waitMs;
    if (first.nextDue >= 0) waitMs = Math.min(waitMs, Math.max(first.nextDue - first.now, 5));
    this.blocker ??= await openConnection(this.url, this.connOpts(), "qworker-blocking");
    // Redis takes fractional seconds; a marker pushed by enqueue (or a peer leaving work behind) wakes us.
    await this.blocker.blpop(...req.queues.map((q) => this.keys.wake(q)), (waitMs / 1000).toFixed(3)).catch(async (err: Error) => {
      // A wake key of the wrong type (written by something else) is set aside by recover.lua within a
      // second; until then wait as if nothing came, rather than report the broker as down.
      if (!err.message.startsWith("WRONGTYPE")) throw err;
      await new Promise((r) => setTimeout(r, Math.min(waitMs, 250)));
    });
    if (this.closed) return [];
    return (await this.reserveNow(req)).tasks;
  }

  private async reserveNow(req: ReserveRequest): Promise<{ tasks: Reservation[]; nextDue: number; now: number }> {
    const tokenPrefix = `${this.tokenBase}${(this.tokenSeq++).toString(36)}.`;
    // A negative max asks reserve.lua for its compact reply (see its header): half the reply elements.
    const compact = req.max > 0;
    const out = (await runScript(this.redis, "reserve", [
      this.keys.prefix,
      req.workerId,
      compact ? -req.max : req.max,
      req.leaseMs,
      tokenPrefix,
      req.resultTtlMs ?? this.resultTtlMs,
      ...req.queues,
    ])) as (string | number)[];
    const nextDue = Number(out[0]);
    const now = Number(out[1]);
    if (compact && Number(out[2]) >= 0) return { tasks: parseCompactLeases(out, tokenPrefix), nextDue, now };
    return { tasks: parseLeaseRows(out, compact ? 3 : 2), nextDue, now };
  }

  async settle(items: SettleItem[]): Promise<string[]> {
    if (items.length === 0) return [];
    const { args, order } = encodeSettle(this.keys.prefix, items);
    const rejected = (await runScript(this.redis, "settle", args)) as number[];
    if (rejected.length === 0) return items.map((it) => it.id);
    // The ids settled, in the caller's order (as before the records were grouped).
    const refused = new Set<number>();
    for (const pos of rejected) refused.add(order ? order[Number(pos)]! : Number(pos));
    const ids: string[] = [];
    items.forEach((it, i) => {
      if (!refused.has(i)) ids.push(it.id);
    });
    return ids;
  }

  async retry(item: RetryItem): Promise<boolean> {
    const ok = await runScript(this.redis, "retry", [
      this.keys.prefix,
      item.id,
      item.token,
      item.queue,
      item.priority,
      item.payload,
      item.dueAt,
    ]);
    return ok === 1;
  }

  async release(items: LeaseRef[]): Promise<void> {
    if (items.length === 0) return;
    await runScript(this.redis, "release", [this.keys.prefix, ...items.flatMap((it) => [it.id, it.token, it.queue])]);
  }

  async deadLetter(items: DeadLetterItem[]): Promise<void> {
    if (items.length === 0) return;
    await runScript(this.redis, "dead_letter", [
      this.keys.prefix,
      ...items.flatMap((it) => [it.id, it.token, it.queue, it.reason, it.error ?? ""]),
    ]);
  }

  async extendLeases(items: LeaseRef[], leaseMs: number): Promise<string[]> {
    if (items.length === 0) return [];
    const lost = (await runScript(this.redis, "extend", [
      this.keys.prefix,
      leaseMs,
      ...items.flatMap((it) => [it.id, it.token, it.queue]),
    ])) as string[];
    return lost.map(String);
  }

  async extendWorkerLeases(workerId: string, leaseMs: number): Promise<string[]> {
    return ((await runScript(this.redis, "extend_worker", [this.keys.prefix, workerId, leaseMs])) as string[]).map(String);
  }

  async releaseOrphans(workerId: string, ids: string[]): Promise<number> {
    return releaseOrphans(this.redis, this.keys.prefix, workerId, ids);
  }

  async recover(opts: RecoverOptions): Promise<RecoverReport> {
    const [promoted, recovered, deadLettered, poisoned] = (await runScript(this.redis, "recover", [
      this.keys.prefix,
      opts.maxDeliveries,
      opts.heartbeatTtlMs,
      opts.deadMax,
      opts.deadTtlMs,
    ])) as [number, number, number, string[]?];
    return {
      promoted: promoted ?? 0,
      recovered: recovered ?? 0,
      deadLettered: deadLettered ?? 0,
      ...(poisoned && poisoned.length > 0 ? { poisoned: poisoned.map(String) } : {}),
    };
  }

  async heartbeat(info: WorkerInfo, ttlMs: number): Promise<void> {
    await runScript(this.redis, "heartbeat", [this.keys.prefix, info.id, JSON.stringify(info), ttlMs]);
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.redis.multi().zrem(this.keys.workers, workerId).del(this.keys.worker(workerId)).exec();
  }

  async workers(): Promise<WorkerInfo[]> {
    const ids = await this.redis.zrange(this.keys.workers, 0, -1);
    if (ids.length === 0) return [];
    const infos = await this.redis.mget(ids.map((id) => this.keys.worker(id)));
    const scores = await this.redis.zmscore(this.keys.workers, ...ids);
    const out: WorkerInfo[] = [];
    infos.forEach((raw, i) => {
      if (!raw) return;
      const score = scores[i];
      // A worker entry we cannot read is skipped; recover.lua removes it when its heartbeat lapses.
      const info = decodeWorkerInfo(raw, score == null ? undefined : Number(score));
      if (info) out.push(info);
    });
    return out;
  }

  private async queueNames(queues?: string[]): Promise<string[]> {
    return queues && queues.length > 0 ? queues : (await this.redis.smembers(this.keys.queues)).sort();
  }

  async stats(queues?: string[]): Promise<QueueCounts[]> {
    const names = await this.queueNames(queues);
    const pipe = this.redis.pipeline();
    for (const q of names) {
      pipe.zcard(this.keys.ready(q)).zcard(this.keys.delayed(q)).zcard(this.keys.active(q)).zcard(this.keys.dead(q));
    }
    const res = (await pipe.exec()) ?? [];
    return names.map((name, i) => {
      const n = (k: number) => {
        const [err, v] = res[i * 4 + k] ?? [null, 0];
        if (err) throw new BrokerError(`cannot read queue ${name}: ${err.message}`);
        return Number(v);
      };
      return { name, ready: n(0), delayed: n(1), active: n(2), dead: n(3) };
    });
  }

  async listDead(queue?: string, limit = 100): Promise<DeadTask[]> {
    const out: DeadTask[] = [];
    for (const q of await this.queueNames(queue ? [queue] : undefined)) {
      const ids = await this.redis.zrevrange(this.keys.dead(q), 0, limit - 1);
      for (const id of ids) {
        const key = this.keys.job(id);
        // A record another program wrote over with another kind of data is listed with what is wrong, not a
        // failure of the whole listing (it was: one such key hid every dead task); requeue_dead.lua sets it aside.
        const h = await this.redis.hgetall(key).catch(
          skipWrongType<Record<string, string>>({
            dr: `its record ${key} holds another kind of data (another program's), not a hash: nothing left to run; qworker requeue ${id} sets it aside and drops this entry`,
          }),
        );
        out.push({
          id,
          queue: q,
          payload: h.p ?? "",
          reason: h.dr ?? "unknown",
          deadAt: Number(h.da ?? 0),
          deliveries: Number(h.d ?? 0),
          ...(h.de ? { error: h.de } : {}),
        });
      }
    }
    return out.slice(0, limit);
  }

  async requeueDead(ids: string[] | "all", queue?: string): Promise<number> {
    let n = 0;
    for (const q of await this.queueNames(queue ? [queue] : undefined)) {
      n += Number(await runScript(this.redis, "requeue_dead", [this.keys.prefix, q, ...(ids === "all" ? ["*"] : ids)]));
    }
    return n;
  }

  async listActive(limit = 100): Promise<ActiveTask[]> {
    const out: ActiveTask[] = [];
    for (const q of await this.queueNames()) {
      const entries = await this.redis.zrange(this.keys.active(q), 0, limit - 1, "WITHSCORES");
      for (let i = 0; i < entries.length; i += 2) {
        const id = entries[i]!;
        // A record another program wrote over with another kind of data has nothing to show, as a missing one
        // (it failed the whole listing); its worker's settle or the sweep sets it aside and reports it.
        const h = await this.redis.hgetall(this.keys.job(id)).catch(skipWrongType<Record<string, string>>({}));
        if (!h.p) continue;
        out.push({
          id,
          queue: q,
          payload: h.p,
          workerId: h.w ?? "",
          leaseUntil: Number(entries[i + 1]),
          startedAt: Number(h.s ?? 0),
          deliveries: Number(h.d ?? 0),
        });
      }
    }
    return out.slice(0, limit);
  }

  async listScheduled(limit = 100): Promise<ScheduledTask[]> {
    const out: ScheduledTask[] = [];
    for (const q of await this.queueNames()) {
      const entries = await this.redis.zrange(this.keys.delayed(q), 0, limit - 1, "WITHSCORES");
      for (let i = 0; i < entries.length; i += 2) {
        const id = entries[i]!;
        // As in listActive; a reserve dead-letters such a task once it is due.
        const payload = await this.redis.hget(this.keys.job(id), "p").catch(skipWrongType(null));
        if (payload) out.push({ id, queue: q, payload, dueAt: Number(entries[i + 1]) });
      }
    }
    return out.sort((a, b) => a.dueAt - b.dueAt).slice(0, limit);
  }

  async purge(queue: string, opts: { dead: boolean }): Promise<number> {
    let total = 0;
    for (;;) {
      const n = Number(await runScript(this.redis, "purge", [this.keys.prefix, queue, opts.dead ? "1" : "0", PURGE_STEP]));
      total += n;
      if (n < PURGE_STEP) return total;
    }
  }

  async getResult(id: string): Promise<string | null> {
    return this.redis.get(this.keys.result(id));
  }

  async waitForResult(id: string, timeoutMs: number): Promise<string | null> {
    if (this.closed) throw this.closedError();
    const channel = this.keys.result(id);
    return new Promise<string | null>((resolve, reject) => {
      let done = false;
      let unsubscribe: (() => void) | undefined;
      const finish = (value: string | null, err?: unknown) => {
        if (done) return;
        done = true;
        cancelDeadline();
        this.resultWaits.delete(wait);
        unsubscribe?.();
        if (err) reject(err);
        else resolve(value);
      };
      const wait: PendingWait = { key: channel, settle: (value) => finish(value), abandon: (err) => finish(null, err) };
      this.resultWaits.add(wait);
      const cancelDeadline = startWaitDeadline(timeoutMs, () => finish(null));
      // Subscribe first, then read: a result stored between the two is caught by one or the other.
      this.listen(channel, (message) => finish(message))
        .then(async (unsub) => {
          unsubscribe = unsub;
          if (done) return unsub();
          let existing: string | null;
          try {
            existing = await this.getResult(id);
          } catch (err) {
            // The read's connection closed under it and is coming back (see closedUnderReconnect): the wait
            // stays, and the catch-up reads its key again, until that succeeds, as after a subscriber reconnect.
            if (!this.closedUnderReconnect(err, this.cmd)) throw err;
            this.subscriberBack();
            return;
          }
          if (existing !== null) finish(existing);
        })
        .catch((err) => finish(null, err));
    });
  }

  async revoke(given: string[], ttlMs: number, terminate: boolean): Promise<RevokeReport> {
    const { ids, aliases } = await this.celeryTaskIds(given);
    if (ids.length === 0) return { aliases };
    // Workers drop these from their prefetch, and abort them if running on terminate. The type for a
    // terminate stays "terminate", which workers before 0.2 (that knew no other) also follow.
    const announce = JSON.stringify({ type: terminate ? "terminate" : "revoke", ids, ttlMs });
    await runScript(this.redis, "revoke", [this.keys.prefix, ttlMs, this.resultTtlMs, announce, terminate ? "1" : "0", ...ids]);
    return { aliases };
  }

  /**
   * The ids to revoke: each `celery:…` id naming a Celery message held here replaced by the message's Celery
   * task id (see Transport.revoke), duplicates dropped. Revoking the lease id itself would leave a running
   * message alone (the worker matches revokes by task id) and finish a parked one with a qworker result no
   * Celery client reads. Ids that name no Celery message here stay as given.
   */
  private async celeryTaskIds(given: string[]): Promise<{ ids: string[]; aliases: [string, string][] }> {
    const leases = given.filter((id) => id.startsWith(CELERY_LEASE_PREFIX));
    if (leases.length === 0) return { ids: [...new Set(given)], aliases: [] };
    const rows = await Promise.all(leases.map((id) => this.redis.hmget(this.keys.job(id), "q", "p")));
    const taskOf = new Map<string, string>();
    // Loaded only here: the Celery protocol modules cost every Redis worker about 8 MB of RSS, and only a
    // revoke naming a Celery lease needs them.
    const { celeryTaskIdOf } = await import("../../protocol/celery/envelope.ts");
    leases.forEach((id, i) => {
      const [queue, payload] = rows[i]!;
      // A native task may carry any id, but is never sent to a lease queue (`celery:<kombu queue>`).
      if (!queue?.startsWith(CELERY_LEASE_PREFIX) || payload == null) return;
      const taskId = celeryTaskIdOf(payload);
      if (taskId !== undefined && taskId !== "") taskOf.set(id, taskId);
    });
    const aliases: [string, string][] = [];
    const ids = new Set<string>();
    for (const id of given) {
      const taskId = taskOf.get(id);
      if (taskId !== undefined) aliases.push([id, taskId]);
      ids.add(taskId ?? id);
    }
    return { ids: [...ids], aliases };
  }

  async rateLimit(name: string, intervalMs: number, taskId: string): Promise<number> {
    return Number(await runScript(this.redis, "rate_limit", [this.keys.prefix, name, intervalMs, taskId]));
  }

  async onRevoke(listener: RevokeListener): Promise<() => void> {
    this.revokeListeners.add(listener);
    const unlisten = await this.listen(this.keys.control, (message) => {
      try {
        const msg = JSON.parse(message) as { type?: string; ids?: unknown; ttlMs?: unknown };
        // A TTL of 0 or less means "forever"; a message from an older client has none.
        const ttlMs = typeof msg.ttlMs === "number" && msg.ttlMs > 0 ? msg.ttlMs : undefined;
        if ((msg.type === "terminate" || msg.type === "revoke") && Array.isArray(msg.ids)) listener(msg.ids.map(String), msg.type === "terminate", ttlMs);
      } catch {
        // Control messages we do not understand are ignored: they may come from a newer version.
      }
    });
    return () => {
      this.revokeListeners.delete(listener);
      unlisten();
    };
  }

  async describeTask(id: string): Promise<TaskLocation | null> {
    const h = await this.redis.hgetall(this.keys.job(id));
    if (h.p === undefined || h.q === undefined) return null;
    const base = { id, queue: h.q, payload: h.p, deliveries: Number(h.d ?? 0) };
    if (h.t) return { ...base, state: "active", workerId: h.w ?? "", startedAt: Number(h.s ?? 0) };
    if (h.dr) return { ...base, state: "dead", reason: h.dr };
    const due = await this.redis.zscore(this.keys.delayed(h.q), id);
    return due === null ? { ...base, state: "ready" } : { ...base, state: "delayed", dueAt: Number(due) };
  }

  async publishActivity(batch: ActivityBatch): Promise<void> {
    if (batch.events.count === 0 && batch.counters.length === 0) return;
    // Not a script: events and counters are observations, not state.
    let events: Promise<unknown> = Promise.resolve();
    let counters: Promise<unknown> = Promise.resolve();
    let countersApplied = batch.counters.length === 0;
    if (batch.events.count > 0) {
      // One stream entry per flush, its events in one field `events`, one JSON event per line: one XADD
      // with one large value is far cheaper to encode and send than a field per event (about half the
      // client CPU per task, and a third of Redis's). The cap counts entries, so it is scaled by this
      // batch's size to keep about eventsMaxLen events. Sent on its own, not with the counters: ioredis
      // copies a pipeline's commands into one new buffer, a second copy of a value that can be hundreds
      // of kilobytes.
      const maxEntries = Math.max(1, Math.ceil(batch.eventsMaxLen / batch.events.count));
      events = this.redis.xadd(this.keys.events, "MAXLEN", "~", maxEntries, "*", "events", batch.events.data);
    }
    if (batch.counters.length > 0) {
      // MULTI, not a plain pipeline: Redis applies none of the increments unless EXEC arrives, so a
      // connection lost part-way leaves nothing half-counted for the retry to count again.
      const tx = this.redis.multi();
      const minutes = new Set<number>();
      for (const c of batch.counters) {
        tx.hincrby(this.keys.counters(c.minute), c.key, c.n);
        minutes.add(c.minute);
      }
      for (const m of minutes) tx.pexpire(this.keys.counters(m), batch.countersTtlMs);
      // Once EXEC ran, the increments are applied. One that failed on its own would fail again: a minute's
      // key of another type (another program's data) is set aside by counters.lua, which adds just the
      // refused increments (none counts twice); anything else is reported, not retried.
      counters = tx.exec().then(async (res) => {
        countersApplied = true;
        const rows = res ?? [];
        const wrongType = (err: Error | null | undefined) => err?.message.startsWith("WRONGTYPE") === true;
        const refused = batch.counters.filter((_, i) => wrongType(rows[i]?.[0]));
        if (refused.length > 0) {
          await runScript(this.redis, "counters", [this.keys.prefix, batch.countersTtlMs, ...refused.flatMap((c) => [c.minute, c.key, c.n])]);
        }
        const failed = rows.find(([err], i) => err && !(i < batch.counters.length && wrongType(err)));
        if (failed?.[0]) throw failed[0];
      });
    }
    const [ev, co] = await Promise.allSettled([events, counters]);
    if (ev.status === "fulfilled" && co.status === "fulfilled") return;
    const reason = (ev.status === "rejected" ? ev.reason : (co as PromiseRejectedResult).reason) as Error;
    const landed = { events: ev.status === "fulfilled", counters: countersApplied };
    throw new ActivityPublishError(`cannot record task events: ${reason.message}`, landed, { cause: reason });
  }

  async readEvents(limit: number): Promise<StoredEvent[]> {
    // Each entry holds one flush's events (see publishActivity); read entries until `limit` events.
    const out: StoredEvent[] = [];
    let end = "+";
    while (out.length < limit) {
      const entries = (await this.redis.xrevrange(this.keys.events, end, "-", "COUNT", 50)) as [string, string[]][];
      for (const [id, fields] of entries) {
        const events: StoredEvent[] = [];
        // `events`: one JSON event per line. `e`: one event per field, as workers before 0.2 wrote them.
        for (let i = 0; i < fields.length; i += 2) {
          if (fields[i] === "events") for (const line of (fields[i + 1] ?? "").split("\n")) events.push({ id: `${id}#${events.length}`, data: line });
          else if (fields[i] === "e") events.push({ id: `${id}#${events.length}`, data: fields[i + 1] ?? "" });
        }
        out.unshift(...events.slice(Math.max(0, events.length - (limit - out.length))));
        if (out.length >= limit) break;
      }
      if (entries.length < 50) break;
      end = `(${entries[entries.length - 1]![0]}`;
    }
    return out;
  }

  async readCounters(sinceMinute: number, leftOut: (line: string) => void = () => {}): Promise<CounterRow[]> {
    const time = await this.redis.time();
    const nowMinute = Math.floor(Number(time[0]) / 60);
    const from = Math.max(Math.trunc(sinceMinute), nowMinute - 1440); // counters never outlive a day
    const pipe = this.redis.pipeline();
    for (let m = from; m <= nowMinute; m++) pipe.hgetall(this.keys.counters(m));
    const res = (await pipe.exec()) ?? [];
    const rows: CounterRow[] = [];
    for (const [i, [err, value]] of res.entries()) {
      const minute = from + i;
      const key = this.keys.counters(minute);
      const at = new Date(minute * 60_000).toISOString().slice(0, 16);
      // Skipped, not repaired: a past minute is never written again, so counters.lua never sets it aside,
      // and one bad minute would otherwise hide every other one until the key expires (if it ever does).
      if (err?.message.startsWith("WRONGTYPE")) {
        const type = await this.redis.type(key).catch(() => "value of another type");
        leftOut(`${key} holds a ${type}, not a hash: the counters of ${at} UTC are not shown (another program's data; inspect it, then DEL it)`);
        continue;
      }
      if (err) throw new BrokerError(`cannot read task counters: ${err.message}`);
      const bad: string[] = [];
      for (const [field, n] of Object.entries(value as Record<string, string>)) {
        // HINCRBY writes only integers; Number() would take "" as 0 and give NaN for the rest.
        if (/^-?\d{1,18}$/.test(n)) rows.push({ minute, key: field, n: Number(n) });
        else bad.push(`"${field}" = ${JSON.stringify(n.length > 40 ? `${n.slice(0, 40)}...` : n)}`);
      }
      if (bad.length > 0) leftOut(`${key} (${at} UTC) has ${bad.length === 1 ? "a field" : `${bad.length} fields`} that ${bad.length === 1 ? "is" : "are"} no integer, not shown: ${bad.slice(0, 3).join(", ")}${bad.length > 3 ? ", ..." : ""} (HDEL ${bad.length === 1 ? "it" : "them"})`);
    }
    return rows;
  }

  async reconnect(): Promise<number> {
    // Only connections that believe they are fine: one already reconnecting is waiting for Redis anyway.
    const live = [this.cmd, this.blocker, this.sub].filter((c) => c?.status === "ready");
    for (const c of live) c!.disconnect(true);
    return live.length;
  }

  isDataError(err: unknown): boolean {
    return isRedisDataError(err);
  }

  async checkSettings(): Promise<string[]> {
    return checkRedisSettings(this.redis);
  }

  private async subscriber(): Promise<RedisConnection> {
    if (this.closed) throw this.closedError();
    this.subReady ??= openSubscriber(this.url, this.connOpts(), "qworker-sub", this.channelListeners, () => this.subscriberBack()).then(
      (sub) => (this.sub = sub),
      (err: unknown) => {
        this.subReady = undefined; // see openSubscriber
        throw err;
      },
    );
    return this.subReady;
  }

  /**
   * The subscriber reconnected (see openSubscriber): what was published while it was away never arrives.
   * Also run when a wait's own first read was cut off by a reconnect; both reads each time, since a start
   * ends the retries of the catch-up before it.
   */
  private subscriberBack(): void {
    if (this.closed || !this.cmd) return;
    const cmd = this.cmd;
    this.catchUp.start([() => this.resultWaits.readAgain(cmd), () => this.resyncRevokes()]);
  }

  /**
   * A revoke announced while the subscriber was away would leave a prefetched task to run, and a terminating
   * one a running task: tell the revoke listeners every revoke still held (the durable set, the
   * REVOKE_RESYNC_MAX held longest), as if announced again, those recorded as terminating (revoke.lua) with
   * terminate. Told twice, a revoke changes nothing: a revoked id is never started again while it is held.
   * Rejects when either set cannot be read, for the catch-up to try again.
   */
  private resyncRevokes(): Promise<void> {
    if (this.closed || !this.cmd || this.revokeListeners.size === 0) return Promise.resolve();
    const cmd = this.cmd;
    /** Held ids with how long each still holds. */
    const held = (key: string): Promise<Map<string, number>> =>
      cmd.zrevrange(key, 0, REVOKE_RESYNC_MAX - 1, "WITHSCORES").then(
        (flat) => {
          const now = Date.now();
          const left = new Map<string, number>();
          for (let i = 0; i < flat.length; i += 2) {
            const until = Number(flat[i + 1]);
            // Told on as a revoke with no TTL, as when it was announced, not as one of some 30,000 years.
            const ms = until >= REVOKE_FOREVER ? Infinity : until - now;
            if (ms > 0) left.set(flat[i]!, ms);
          }
          return left;
        },
      );
    // Both sets or neither: a terminating revoke told without its terminate would leave its task running.
    return Promise.all([held(this.keys.revoked), held(this.keys.revokedTerminate)]).then(([revoked, terminating]) => {
      if (this.closed) return;
      const plain: string[] = [];
      const terminate: string[] = [];
      let plainTtl = 0;
      let terminateTtl = 0;
      for (const [id, ms] of revoked) {
        if (terminating.has(id)) {
          terminate.push(id);
          terminateTtl = Math.max(terminateTtl, ms);
        } else {
          plain.push(id);
          plainTtl = Math.max(plainTtl, ms);
        }
      }
      for (const listener of this.revokeListeners) {
        if (plain.length > 0) listener(plain, false, Number.isFinite(plainTtl) ? plainTtl : undefined);
        if (terminate.length > 0) listener(terminate, true, Number.isFinite(terminateTtl) ? terminateTtl : undefined);
      }
    });
  }

  /**
   * ioredis's "Connection is closed." for a command whose connection closed before it was answered, on a
   * connection that is coming back. A Cluster (reconnect(), or a Cluster replacing its connections) sends
   * such a command again only while it stays ready, and so fails the commands it had sent when it
   * reconnects as a whole; a single server or Sentinel connection sends them again itself. Not after
   * close(), nor from a connection that has ended.
   */
  private closedUnderReconnect(err: unknown, conn: RedisConnection | undefined): boolean {
    return !this.closed && conn !== undefined && conn.status !== "end" && err instanceof Error && err.message === "Connection is closed.";
  }

  private async listen(channel: string, fn: (message: string) => void): Promise<() => void> {
    const sub = await this.subscriber();
    let set = this.channelListeners.get(channel);
    if (!set) {
      const own = new Set<(message: string) => void>();
      set = own;
      this.channelListeners.set(channel, own);
      const subscribed = sub.subscribe(channel).then(
        () => undefined,
        (err: unknown) => {
          // The subscriber closed before Redis answered and is coming back: it subscribes again to every
          // channel listened to, this one too, and the catch-up then reads what was missed meanwhile.
          if (this.closedUnderReconnect(err, sub)) return;
          // Refused (an ACL without SUBSCRIBE, say): the channel is forgotten, so the next wait subscribes
          // again instead of counting on a subscription that never was.
          if (this.channelListeners.get(channel) === own) this.channelListeners.delete(channel);
          throw err;
        },
      );
      this.subscribing.set(channel, subscribed);
      const settled = () => {
        if (this.subscribing.get(channel) === subscribed) this.subscribing.delete(channel);
      };
      subscribed.then(settled, settled);
    }
    // Added at once, so that another wait leaving meanwhile does not take the channel's subscription away.
    set.add(fn);
    // A wait that joins a channel whose SUBSCRIBE is still on its way waits for it too: its first read must
    // come after the subscription, or a result published in between would reach nobody.
    const pending = this.subscribing.get(channel);
    if (pending) {
      try {
        await pending;
      } catch (err) {
        set.delete(fn);
        throw err;
      }
    }
    return () => {
      const s = this.channelListeners.get(channel);
      if (!s) return;
      s.delete(fn);
      if (s.size === 0) {
        this.channelListeners.delete(channel);
        sub.unsubscribe(channel).catch(() => {});
      }
    };
  }
}
