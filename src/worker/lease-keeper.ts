import { Worker as Thread } from "node:worker_threads";
import type { Logger } from "pino";
import type { LeaseRef, WorkerInfo } from "../broker/transport.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { BrokerError } from "../errors.ts";
import type { FromKeeper, KeeperConfig, ToKeeper } from "./lease-keeper-protocol.ts";

/**
 * Keeps a worker's leases and heartbeat alive independently of its event loop. The worker tells it which
 * leases it holds and what to beat with; the keeper tells the worker which leases the broker says are lost.
 */
export interface LeaseKeeper {
  start(): Promise<void>;
  add(ref: LeaseRef): void;
  /** Post what add/remove/beat queued now, instead of at the next microtask checkpoint. */
  flush(): void;
  remove(ref: LeaseRef): void;
  /** The worker info the next heartbeats carry (post it whenever the worker's loop is free). */
  beat(info: WorkerInfo): void;
  onLost(listener: (refs: LeaseRef[]) => void): void;
  stop(): Promise<void>;
}

/**
 * The keeper holds a map of lease refs and makes a few calls a second, yet a thread's young generation
 * grows like the main thread's (tens of MB) under the churn of lease messages at high throughput. A small
 * young generation caps that at a few MB; old space stays at V8's default so a huge pool cannot starve it.
 */
const KEEPER_LIMITS = { maxYoungGenerationSizeMb: 4 };

const FROM_SOURCE = import.meta.url.endsWith(".ts");
const ENTRY = new URL(`./lease-keeper-thread.${FROM_SOURCE ? "ts" : "js"}`, import.meta.url);

/**
 * A worker thread with its own broker connection. Blocking the main thread does not block it, so a
 * CPU-bound task in the async pool keeps its lease (and its worker counts as alive) however long it runs.
 */
export class ThreadLeaseKeeper implements LeaseKeeper {
  private thread: Thread | undefined;
  private lostListener: ((refs: LeaseRef[]) => void) | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly cfg: Omit<KeeperConfig, "tickMs"> & { tickMs?: number },
    private readonly logger: Logger,
  ) {}

  start(): Promise<void> {
    const workerData: KeeperConfig = { tickMs: 100, ...this.cfg };
    // Under tsx (running from the TypeScript sources) a thread does not inherit the loader: register it
    // in the thread before importing the entry.
    const thread = FROM_SOURCE
      ? new Thread(
          `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})` +
            `.then((m) => { m.register(); return import(${JSON.stringify(ENTRY.href)}); });`,
          { eval: true, workerData, resourceLimits: KEEPER_LIMITS },
        )
      : new Thread(ENTRY, { workerData, resourceLimits: KEEPER_LIMITS });
    this.thread = thread;
    thread.unref();
    return new Promise<void>((resolve, reject) => {
      thread.on("message", (m: FromKeeper) => {
        switch (m.type) {
          case "ready":
            return resolve();
          case "fatal":
            return reject(new BrokerError(`lease keeper could not reach the broker: ${m.message}`));
          case "lost":
            return this.lostListener?.(m.refs);
          case "error":
            return this.logger.warn(`lease keeper: broker call failed (${m.message}); retrying`);
          case "ok":
            return this.logger.info("lease keeper: broker reachable again");
          case "stopped":
            return;
        }
      });
      thread.on("error", (err) => {
        this.logger.error(`lease keeper thread failed: ${err.message}`);
        reject(err);
      });
    });
  }

  private adds: string[] = [];
  private removes: string[] = [];
  private info: WorkerInfo | undefined;
  private flushScheduled = false;

  /**
   * Changes are queued and posted together at the next microtask checkpoint: a busy worker adds and
   * removes a lease per task, and one postMessage per change cost about 5 % of its CPU in the bench
   * profile. A microtask, not setImmediate, so a lease reaches the thread before the event loop can be
   * blocked by a handler; the worker also calls flush() itself before starting a reserved batch.
   */
  private schedule(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushPosts);
    }
  }

  private readonly flushPosts = (): void => {
    this.flushScheduled = false;
    if (this.adds.length === 0 && this.removes.length === 0 && !this.info) return;
    const m: ToKeeper = { type: "leases", add: this.adds, remove: this.removes, ...(this.info ? { info: this.info } : {}) };
    this.adds = [];
    this.removes = [];
    this.info = undefined;
    this.thread?.postMessage(m);
  };

  flush(): void {
    this.flushPosts();
  }

  add(ref: LeaseRef): void {
    this.adds.push(ref.id, ref.token, ref.queue);
    this.schedule();
  }

  remove(ref: LeaseRef): void {
    this.removes.push(ref.id, ref.token);
    this.schedule();
  }

  beat(info: WorkerInfo): void {
    this.info = info;
    this.schedule();
  }

  onLost(listener: (refs: LeaseRef[]) => void): void {
    this.lostListener = listener;
  }

  stop(): Promise<void> {
    const thread = this.thread;
    if (!thread) return Promise.resolve();
    this.stopped ??= new Promise<void>((resolve) => {
      const done = setTimeout(() => void thread.terminate().then(() => resolve()), 3000);
      thread.once("exit", () => {
        clearTimeout(done);
        resolve();
      });
      this.flushPosts();
      thread.postMessage({ type: "stop" } satisfies ToKeeper);
    });
    return this.stopped;
  }
}

/**
 * The keeper a worker daemon uses: a thread with its own connection to the configured broker. None when
 * Celery interop wraps the transport (its leases live in Celery's keys, renewed by the wrapper in-loop).
 */
export function leaseKeeperFor(config: QWorkerConfig & { broker_url: string }, logger: Logger): LeaseKeeper | undefined {
  if (config.celery) return undefined;
  return new ThreadLeaseKeeper(
    {
      brokerUrl: config.broker_url,
      redisPrefix: config.redis_prefix,
      leaseMs: config.lease_timeout * 1000,
      heartbeatIntervalMs: config.heartbeat_interval * 1000,
      heartbeatTtlMs: config.heartbeat_ttl * 1000,
    },
    logger,
  );
}
