import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { closeConnection, maskUrl, openConnection, type RedisConnection } from "../broker/redis/connection.ts";
import { parseLeaseRows } from "../broker/redis/lease-rows.ts";
import { isClusterUrl, isRedisUrl } from "../broker/redis/url.ts";
import { runScript } from "../broker/redis/scripts.ts";
import { releaseOrphans } from "../broker/redis/orphans.ts";
import type {
  DeadLetterItem,
  LeaseRef,
  RecoverOptions,
  RecoverReport,
  Reservation,
  ReserveRequest,
  RevokeListener,
  RetryItem,
  SettleItem,
  Transport,
  WorkerInfo,
} from "../broker/transport.ts";
import { BrokerError, MessageError } from "../errors.ts";
import {
  bindingKey,
  bindingMember,
  decodeCeleryMessage,
  encodeCeleryRetry,
  failureMeta,
  peekCeleryIdentity,
  PRIORITY_STEPS,
  priorityStep,
  queueListKey,
  resultKey,
  retryMeta,
  revokedMeta,
  startedMeta,
  type CeleryTaskRequest,
} from "../protocol/celery/index.ts";
import { encodeMessage } from "../protocol/message.ts";
import type { WorkerEvents } from "../worker/events.ts";
import { RecentRevokes } from "../worker/recent-revokes.ts";
import { celeryMetaFromRecord, metaText, toTaskMessage } from "./codec.ts";
import type { CeleryConfig } from "./config.ts";
import { listenForRevokes } from "./revoke.ts";

/** qworker queue (lease structures) that holds messages taken from kombu queue `q`. */
export function leaseQueue(kombuQueue: string): string {
  return `celery:${kombuQueue}`;
}

export interface CeleryConsumerOptions {
  /** The worker's own transport: native queues (and the Celery leases when Celery uses the same Redis). */
  inner: Transport;
  celery: CeleryConfig;
  /** The worker's broker_url. */
  brokerUrl: string;
  /** The worker's redis_prefix: Celery leases live under it, beside native tasks. */
  prefix: string;
  /** Native queues the worker also consumes (none: Celery only). */
  nativeQueues: string[];
  logger: Logger;
}

interface Lease {
  leaseId: string;
  token: string;
  /** The lease queue (celery:<kombu queue>). */
  queue: string;
  kombuQueue: string;
  req: CeleryTaskRequest;
}

interface CelerySettle {
  leaseId: string;
  token: string;
  queue: string;
  taskId?: string;
  meta?: string;
  deadReason?: string;
}

/**
 * Consumes Celery's kombu queues next to a worker's native queues and speaks Celery's result format.
 *
 * It wraps the worker's transport (see `withCelery`): reserve() also claims kombu messages (celery_claim.lua
 * moves each one atomically into a qworker lease), and hands the worker an ordinary TaskMessage; settle(),
 * retry(), release(), extendLeases() and deadLetter() route the leases it handed out to the Celery
 * scripts, so the worker's own decode/expiry/retry/time-limit/lease logic runs unchanged. Everything
 * else passes through. Waiting: kombu lists have no wake marker, so while the worker is idle this polls
 * them every `poll_interval` (one Lua call), and waits on the native queues in between.
 */
export class CeleryConsumer {
  private redis?: RedisConnection;
  private readonly url: string;
  readonly sameBroker: boolean;
  private readonly leases = new Map<string, Lease>();
  private readonly byTask = new Map<string, string>();
  private readonly retryErrors = new Map<string, Error>();
  private readonly revokeListeners = new Set<RevokeListener>();
  /**
   * Celery task ids revoked lately (from `qworker revoke` or a Celery broadcast), checked when a message is
   * admitted: a revoke heard while its message was being claimed, before `byTask` knew its lease, would
   * otherwise reach the worker under an id it does not hold the task by.
   */
  private readonly recentRevokes = new RecentRevokes();
  private stopRevokes: (() => Promise<void>) | undefined;
  private readonly listArgs: (string | number)[];
  private readonly leaseQueues: string[];
  private closed = false;
  /**
   * Lease ids must be unique across every worker and claim: a random base per consumer (48 bits) and a
   * counter, rather than a call into the CSPRNG on every claim (about 10 µs each).
   */
  private readonly idBase = randomBytes(6).toString("base64url");
  private idSeq = 0;

  constructor(private readonly opts: CeleryConsumerOptions) {
    const c = opts.celery;
    this.url = c.broker_url ?? opts.brokerUrl;
    this.sameBroker = opts.inner.kind === "redis" && this.url === opts.brokerUrl;
    this.leaseQueues = c.queues.map(leaseQueue);
    // kombu's BRPOP order: every queue's priority-0 list first, then step 3, 6, 9.
    this.listArgs = PRIORITY_STEPS.flatMap((step) => c.queues.flatMap((q) => [queueListKey(q, step, c.key_prefix), leaseQueue(q), 9 - step]));
  }

  get ttlS(): number {
    return Math.round(this.opts.celery.result_expires);
  }

  private get cmd(): RedisConnection {
    if (!this.redis) throw new BrokerError("Celery consumer used before connect()");
    return this.redis;
  }

  async connect(): Promise<void> {
    if (!isRedisUrl(this.url) || isClusterUrl(this.url)) {
      const what = isClusterUrl(this.url) ? "kombu has no Redis Cluster support, so Celery's broker is one Redis" : "celery needs a Redis broker";
      throw new BrokerError(`${what}, got ${maskUrl(this.url)}: set celery.broker_url to the Redis your Celery app uses`);
    }
    this.redis ??= await openConnection(this.url, { connectTimeoutMs: 3000, failFast: false }, "qworker-celery");
    // kombu restores unacked messages through these bindings; a Celery worker declares the same.
    const pipe = this.cmd.pipeline();
    for (const q of this.opts.celery.queues) pipe.sadd(bindingKey(q, this.opts.celery.key_prefix), bindingMember(q, q));
    await pipe.exec();
    if (this.opts.celery.revoke) {
      this.stopRevokes = await listenForRevokes(this.url, this.opts.logger, (ids, terminate) => this.celeryRevoked(ids, terminate), this.opts.celery.key_prefix);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stopRevokes?.().catch(() => {});
    if (this.redis) await closeConnection(this.redis);
  }

  /** Watch the worker: STARTED results, and the error a retry is for (RETRY meta). */
  attach(events: WorkerEvents): void {
    events.on("task:started", (msg) => {
      if (!this.opts.celery.track_started) return;
      const lease = this.leaseOfTask(msg.id);
      if (!lease) return;
      const meta = metaText(startedMeta(msg.id, { pid: process.pid, hostname: `qworker@${hostname()}` }));
      runScript(this.cmd, "celery_store", [this.opts.prefix, lease.leaseId, lease.token, resultKey(msg.id), meta, this.ttlS]).catch(
        (err: unknown) => this.opts.logger.debug({ err }, "could not store STARTED"),
      );
    });
    events.on("task:retry", (msg, error) => {
      if (this.byTask.has(msg.id)) this.retryErrors.set(msg.id, error);
    });
  }

  private leaseOfTask(taskId: string): Lease | undefined {
    const leaseId = this.byTask.get(taskId);
    return leaseId === undefined ? undefined : this.leases.get(leaseId);
  }

  owns(id: string): boolean {
    return this.leases.has(id) || id.startsWith("celery:");
  }

  private forget(leaseId: string): void {
    const lease = this.leases.get(leaseId);
    if (!lease) return;
    this.leases.delete(leaseId);
    if (this.byTask.get(lease.req.id) === leaseId) {
      this.byTask.delete(lease.req.id);
      this.retryErrors.delete(lease.req.id);
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Reserving
  // ----------------------------------------------------------------------------------------------

  async reserve(req: ReserveRequest): Promise<Reservation[]> {
    const deadline = Date.now() + req.waitMs;
    const pollMs = this.opts.celery.poll_interval * 1000;
    for (;;) {
      const celery = await this.claim(req);
      const rest = req.max - celery.length;
      let native: Reservation[] = [];
      const left = deadline - Date.now();
      if (rest > 0 && this.opts.nativeQueues.length > 0) {
        const waitMs = celery.length > 0 || left <= 0 ? 0 : Math.min(pollMs, left);
        native = await this.opts.inner.reserve({ ...req, queues: this.opts.nativeQueues, max: rest, waitMs });
      } else if (celery.length === 0 && left > 0) {
        await new Promise((r) => setTimeout(r, Math.min(pollMs, left)));
      }
      if (celery.length + native.length > 0 || Date.now() >= deadline || this.closed) return [...celery, ...native];
    }
  }

  /** Lease up to req.max Celery messages: recovered or ETA-parked ones first, then kombu's lists. */
  private async claim(req: ReserveRequest): Promise<Reservation[]> {
    const p = this.opts.prefix;
    const idPrefix = `${this.idBase}${(this.idSeq++).toString(36)}.`;
    // Messages already in qworker's structures (recovered after a crash, or parked until their ETA).
    const parked = (await runScript(this.cmd, "reserve", [p, req.workerId, req.max, req.leaseMs, `r${idPrefix}`, 86_400_000, ...this.leaseQueues])) as (
      | string
      | number
    )[];
    const claimed = parseLeaseRows(parked, 2);
    let now = Number(parked[1]);
    const room = req.max - claimed.length;
    if (room > 0) {
      const fresh = (await runScript(this.cmd, "celery_claim", [p, req.workerId, room, req.leaseMs, idPrefix, ...this.listArgs])) as (
        | string
        | number
      )[];
      now = Number(fresh[0]);
      claimed.push(...parseLeaseRows(fresh, 1));
    }
    if (claimed.length === 0) return [];
    return this.admit(claimed, now);
  }

  /** Decode, then run, park until the ETA, finish as revoked, or dead-letter what cannot be read. */
  /** `claimed`: lease rows whose payload is kombu's raw message. */
  private async admit(claimed: Reservation[], now: number): Promise<Reservation[]> {
    const decoded: { c: Reservation; req: CeleryTaskRequest }[] = [];
    const finals: CelerySettle[] = [];
    for (const c of claimed) {
      try {
        decoded.push({ c, req: decodeCeleryMessage(c.payload) });
      } catch (err) {
        const reason = `undecodable Celery message: ${(err as Error).message}`;
        const { id, task } = peekCeleryIdentity(c.payload);
        this.opts.logger.error(`celery message ${task ?? "?"}[${id ?? "?"}] in ${c.queue} dead-lettered: ${reason}`);
        const meta = id ? metaText(failureMeta(id, err instanceof Error ? err : new MessageError(reason))) : undefined;
        finals.push({ leaseId: c.id, token: c.token, queue: c.queue, deadReason: reason, ...(id ? { taskId: id, meta } : {}) });
      }
    }
    const revokedScores = decoded.length > 0 ? await this.cmd.zmscore(`${this.opts.prefix}revoked`, ...decoded.map((d) => d.req.id)) : [];
    const out: Reservation[] = [];
    for (const [i, { c, req }] of decoded.entries()) {
      const revokedUntil = Number(revokedScores[i] ?? 0);
      if (revokedUntil > now || this.recentRevokes.has(req.id)) {
        this.opts.logger.warn(`celery task ${req.task}[${req.id}] was revoked; not run`);
        finals.push({ leaseId: c.id, token: c.token, queue: c.queue, taskId: req.id, meta: metaText(revokedMeta(req.id, "revoked")) });
        continue;
      }
      if (req.eta !== undefined && req.eta > now + 10) {
        // Wait in Redis (the lease queue's delayed set), not in this process: nothing is held in memory.
        const ok = await runScript(this.cmd, "retry", [this.opts.prefix, c.id, c.token, c.queue, 9 - priorityStep(req.priority), c.payload, req.eta]);
        if (ok !== 1) this.opts.logger.warn(`celery task ${req.task}[${req.id}]: lease lost before parking it until its ETA`);
        continue;
      }
      if (req.hasWorkflow) {
        this.opts.logger.warn(`celery task ${req.task}[${req.id}] carries link/chain/chord work that qworker does not run; running the task alone`);
      }
      const kombuQueue = c.queue.slice("celery:".length);
      this.leases.set(c.id, { leaseId: c.id, token: c.token, queue: c.queue, kombuQueue, req });
      this.byTask.set(req.id, c.id);
      out.push({
        id: c.id,
        queue: c.queue,
        payload: encodeMessage(toTaskMessage(req, kombuQueue, now)),
        token: c.token,
        deliveries: c.deliveries,
        leaseUntil: c.leaseUntil,
      });
    }
    if (finals.length > 0) await this.settleCelery(finals);
    return out;
  }

  // ----------------------------------------------------------------------------------------------
  // Finishing
  // ----------------------------------------------------------------------------------------------

  private async settleCelery(items: CelerySettle[]): Promise<string[]> {
    const args: (string | number)[] = [this.opts.prefix];
    for (const it of items) {
      const store = it.taskId !== undefined && it.meta !== undefined;
      args.push(it.leaseId, it.token, it.queue, store ? resultKey(it.taskId!) : "", store ? it.meta! : "", this.ttlS, it.deadReason ?? "");
    }
    return ((await runScript(this.cmd, "celery_settle", args)) as string[]).map(String);
  }

  /** The worker's settle batch: Celery leases get Celery metas, native tasks go to the inner transport. */
  async settle(items: SettleItem[]): Promise<string[]> {
    const mine: CelerySettle[] = [];
    const native: SettleItem[] = [];
    for (const it of items) {
      const lease = this.leases.get(it.id);
      if (!lease) {
        if (it.id.startsWith("celery:")) mine.push({ leaseId: it.id, token: it.token, queue: it.queue });
        else native.push(it);
        continue;
      }
      let meta: string | undefined;
      try {
        const m = it.result === undefined ? undefined : celeryMetaFromRecord(lease.req.id, it.result);
        meta = m && metaText(m);
      } catch (err) {
        meta = metaText(failureMeta(lease.req.id, err));
      }
      mine.push({
        leaseId: it.id,
        token: it.token,
        queue: it.queue,
        taskId: lease.req.id,
        ...(meta !== undefined ? { meta } : {}),
        ...(it.deadReason ? { deadReason: it.deadReason } : {}),
      });
    }
    const [a, b] = await Promise.all([
      mine.length > 0 ? this.settleCelery(mine) : Promise.resolve([]),
      native.length > 0 ? this.opts.inner.settle(native) : Promise.resolve([]),
    ]);
    for (const m of mine) this.forget(m.leaseId);
    return [...a, ...b];
  }

  /** Celery's retry: the same id with retries + 1 and an ETA goes back to kombu's list, RETRY is stored. */
  async retry(item: RetryItem): Promise<boolean> {
    const lease = this.leases.get(item.id);
    if (!lease) return this.opts.inner.retry(item);
    const { req } = lease;
    const next = encodeCeleryRetry(req, { eta: item.dueAt, queue: lease.kombuQueue, keyPrefix: this.opts.celery.key_prefix });
    const error = this.retryErrors.get(req.id) ?? new Error("Retry");
    const meta = metaText(retryMeta(req.id, error));
    const ok = await runScript(this.cmd, "celery_retry", [
      this.opts.prefix,
      item.id,
      item.token,
      item.queue,
      next.listKey,
      next.raw,
      resultKey(req.id),
      meta,
      this.ttlS,
    ]);
    this.forget(item.id);
    return ok === 1;
  }

  private split<T extends { id: string }>(items: T[]): [T[], T[]] {
    const mine: T[] = [];
    const native: T[] = [];
    for (const it of items) (this.owns(it.id) ? mine : native).push(it);
    return [mine, native];
  }

  async release(items: LeaseRef[]): Promise<void> {
    const [mine, native] = this.split(items);
    if (mine.length > 0) {
      await runScript(this.cmd, "release", [this.opts.prefix, ...mine.flatMap((it) => [it.id, it.token, it.queue])]);
      for (const m of mine) this.forget(m.id);
    }
    if (native.length > 0) await this.opts.inner.release(native);
  }

  async deadLetter(items: DeadLetterItem[]): Promise<void> {
    const [mine, native] = this.split(items);
    if (mine.length > 0) {
      await runScript(this.cmd, "dead_letter", [this.opts.prefix, ...mine.flatMap((it) => [it.id, it.token, it.queue, it.reason, it.error ?? ""])]);
      for (const m of mine) this.forget(m.id);
    }
    if (native.length > 0) await this.opts.inner.deadLetter(native);
  }

  async extendLeases(items: LeaseRef[], leaseMs: number): Promise<string[]> {
    const [mine, native] = this.split(items);
    const lost: string[] = [];
    if (mine.length > 0) {
      const out = (await runScript(this.cmd, "extend", [this.opts.prefix, leaseMs, ...mine.flatMap((it) => [it.id, it.token, it.queue])])) as string[];
      lost.push(...out.map(String));
    }
    if (native.length > 0) lost.push(...(await this.opts.inner.extendLeases(native, leaseMs)));
    return lost;
  }

  /** Celery leases live on the Celery Redis (maybe not the worker's own): hand those back there. */
  async releaseOrphans(workerId: string, ids: string[]): Promise<number> {
    const mine = ids.filter((id) => this.owns(id));
    const native = ids.filter((id) => !this.owns(id));
    let n = 0;
    if (mine.length > 0) n += await releaseOrphans(this.cmd, this.opts.prefix, workerId, mine);
    if (native.length > 0) n += (await this.opts.inner.releaseOrphans?.(workerId, native)) ?? 0;
    return n;
  }

  /** The sweep also runs on the Celery Redis when it is not the worker's own broker. */
  async recover(opts: RecoverOptions): Promise<RecoverReport> {
    const rep = await this.opts.inner.recover(opts);
    if (this.sameBroker) return rep;
    const [promoted, recovered, dead] = (await runScript(this.cmd, "recover", [
      this.opts.prefix,
      opts.maxDeliveries,
      opts.heartbeatTtlMs,
      opts.deadMax,
      opts.deadTtlMs,
    ])) as number[];
    return { promoted: rep.promoted + (promoted ?? 0), recovered: rep.recovered + (recovered ?? 0), deadLettered: rep.deadLettered + (dead ?? 0) };
  }

  /** A heartbeat on the Celery Redis too, so a dead worker's Celery leases come back at once. */
  async heartbeat(info: WorkerInfo, ttlMs: number): Promise<void> {
    await this.opts.inner.heartbeat(info, ttlMs);
    if (!this.sameBroker) await runScript(this.cmd, "heartbeat", [this.opts.prefix, info.id, JSON.stringify(info), ttlMs]);
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.opts.inner.removeWorker(workerId);
    if (!this.sameBroker) {
      await this.cmd.multi().zrem(`${this.opts.prefix}workers`, workerId).del(`${this.opts.prefix}w:${workerId}`).exec();
    }
  }

  /**
   * The worker holds a Celery message under its lease id (`celery:…`), while revokes name the Celery task
   * id: `qworker revoke <id>` on the worker's own broker, and Celery's broadcast (`celeryRevoked`). Both
   * reach the worker with the lease ids added, so it drops a prefetched message and, on terminate,
   * aborts a running one, exactly as for a native task.
   */
  async onRevoke(listener: RevokeListener): Promise<() => void> {
    const unsubscribe = await this.opts.inner.onRevoke((ids, terminate, ttlMs) => {
      this.recentRevokes.prune();
      this.recentRevokes.note(ids, ttlMs);
      // `qworker revoke` recorded the ids on the worker's broker; admit() reads the revoked set on Celery's.
      if (!this.sameBroker) this.recordRevokes(ids, ttlMs ?? this.opts.celery.revoke_expires * 1000, "qworker revoke");
      listener(this.withLeaseIds(ids), terminate, ttlMs);
    });
    this.revokeListeners.add(listener);
    return () => {
      this.revokeListeners.delete(listener);
      unsubscribe();
    };
  }

  /** The ids, plus the lease id of each one that is a Celery task this consumer holds. */
  private withLeaseIds(ids: string[]): string[] {
    let out: string[] | undefined;
    for (const id of ids) {
      const leaseId = this.byTask.get(id);
      if (leaseId !== undefined) (out ??= [...ids]).push(leaseId);
    }
    return out ?? ids;
  }

  /** Remember revoked Celery task ids in the Celery Redis, where admit() checks them (never shortening one). */
  private recordRevokes(ids: string[], ttlMs: number, from: string): void {
    const until = Date.now() + ttlMs;
    this.cmd
      .zadd(`${this.opts.prefix}revoked`, "GT", ...ids.flatMap((id) => [until, id]))
      .catch((err: unknown) => this.opts.logger.error(`could not record a ${from} on Celery's Redis: ${(err as Error).message}`));
  }

  /**
   * A Celery revoke broadcast: remember the ids like `qworker revoke`, and tell the worker, which drops
   * them from its prefetch and, on terminate, aborts those it runs.
   */
  private async celeryRevoked(ids: string[], terminate: boolean): Promise<void> {
    if (ids.length === 0) return;
    const ttlMs = this.opts.celery.revoke_expires * 1000;
    this.recentRevokes.prune();
    this.recentRevokes.note(ids, ttlMs);
    const until = Date.now() + ttlMs;
    await this.cmd.zadd(`${this.opts.prefix}revoked`, ...ids.flatMap((id) => [until, id]));
    this.opts.logger.info(`celery revoke for ${ids.join(", ")}${terminate ? " (terminate)" : ""}`);
    const withLeases = this.withLeaseIds(ids);
    for (const fn of this.revokeListeners) fn(withLeases, terminate, ttlMs);
  }
}

/**
 * The worker's transport with Celery consumption added: methods the consumer handles are routed to it,
 * everything else (stats, inspect, events, results, revoke …) goes to the worker's own transport, so
 * methods added to Transport later keep working.
 */
export function withCelery(inner: Transport, consumer: CeleryConsumer): Transport {
  const routed = {
    connect: async () => {
      await inner.connect();
      await consumer.connect();
    },
    close: async () => {
      await consumer.close();
      await inner.close();
    },
    reserve: (req: ReserveRequest) => consumer.reserve(req),
    settle: (items: SettleItem[]) => consumer.settle(items),
    retry: (item: RetryItem) => consumer.retry(item),
    release: (items: LeaseRef[]) => consumer.release(items),
    deadLetter: (items: DeadLetterItem[]) => consumer.deadLetter(items),
    extendLeases: (items: LeaseRef[], leaseMs: number) => consumer.extendLeases(items, leaseMs),
    releaseOrphans: (workerId: string, ids: string[]) => consumer.releaseOrphans(workerId, ids),
    recover: (opts: RecoverOptions) => consumer.recover(opts),
    heartbeat: (info: WorkerInfo, ttlMs: number) => consumer.heartbeat(info, ttlMs),
    removeWorker: (id: string) => consumer.removeWorker(id),
    onRevoke: (listener: RevokeListener) => consumer.onRevoke(listener),
  } satisfies Partial<Transport>;
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (typeof prop === "string" && Object.hasOwn(routed, prop)) return routed[prop as keyof typeof routed];
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
