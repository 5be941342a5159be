import { Worker as Thread } from "node:worker_threads";
import type { Logger } from "pino";
import type { WorkerInfo } from "../broker/transport.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { BrokerError } from "../errors.ts";
import type { FromKeeper, KeeperConfig, ToKeeper } from "./lease-keeper-protocol.ts";

/**
 * Keeps a worker's leases and heartbeat alive independently of its event loop. It renews whatever the
 * broker has leased to the worker (Transport.extendWorkerLeases), so the worker tells it nothing per task,
 * only what to beat with; after each renewal it reports which leases the broker still holds for the
 * worker, and the worker treats any older lease missing from that list as lost.
 */
export interface LeaseKeeper {
  start(workerId: string): Promise<void>;
  /** The worker info the next heartbeats carry (post it whenever the worker's loop is free). */
  beat(info: WorkerInfo): void;
  onRenewed(listener: (startedAt: number, ids: string[]) => void): void;
  stop(): Promise<void>;
}

/**
 * The keeper makes a few broker calls a second and holds almost nothing, yet a thread's young generation
 * grows like the main thread's (tens of MB) by default. A small young generation caps that at a few MB;
 * old space stays at V8's default.
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
  private renewedListener: ((startedAt: number, ids: string[]) => void) | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly cfg: Omit<KeeperConfig, "tickMs" | "workerId"> & { tickMs?: number },
    private readonly logger: Logger,
  ) {}

  start(workerId: string): Promise<void> {
    const workerData: KeeperConfig = { tickMs: 100, ...this.cfg, workerId };
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
          case "renewed":
            return this.renewedListener?.(m.startedAt, m.ids);
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

  beat(info: WorkerInfo): void {
    this.thread?.postMessage({ type: "info", info } satisfies ToKeeper);
  }

  onRenewed(listener: (startedAt: number, ids: string[]) => void): void {
    this.renewedListener = listener;
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
      thread.postMessage({ type: "stop" } satisfies ToKeeper);
    });
    return this.stopped;
  }
}

/**
 * The keeper a worker daemon uses: a thread with its own connection to the configured broker. With Celery
 * interop it covers the Celery leases too: celery_claim.lua leases kombu messages in the worker's own lease
 * structures, so the per-worker renewal includes them; a Celery broker other than broker_url gets its own
 * connection in the thread.
 */
export function leaseKeeperFor(config: QWorkerConfig & { broker_url: string }, logger: Logger): LeaseKeeper {
  const celeryUrl = config.celery?.broker_url;
  return new ThreadLeaseKeeper(
    {
      brokerUrl: config.broker_url,
      ...(celeryUrl !== undefined && celeryUrl !== config.broker_url ? { extraBrokerUrls: [celeryUrl] } : {}),
      redisPrefix: config.redis_prefix,
      leaseMs: config.lease_timeout * 1000,
      heartbeatIntervalMs: config.heartbeat_interval * 1000,
      heartbeatTtlMs: config.heartbeat_ttl * 1000,
    },
    logger,
  );
}
