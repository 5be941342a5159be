import type { WorkerInfo } from "../broker/transport.ts";

/** What the lease keeper's thread is started with. */
export interface KeeperConfig {
  brokerUrl: string;
  /**
   * Other Redis servers holding leases of this worker under the same prefix (a Celery broker that is not
   * the worker's own): renewed and beaten on as well.
   */
  extraBrokerUrls?: string[];
  /** Whose leases to renew: the broker knows every task it leased to this worker. */
  workerId: string;
  redisPrefix?: string;
  leaseMs: number;
  heartbeatIntervalMs: number;
  heartbeatTtlMs: number;
  /** How often the thread looks whether a renewal or a beat is due. */
  tickMs: number;
}

export type ToKeeper = { type: "info"; info: WorkerInfo } | { type: "stop" };

export type FromKeeper =
  | { type: "ready" }
  | { type: "fatal"; message: string }
  /**
   * A renewal round: every lease the broker holds for this worker, as it stood at some moment after
   * `startedAt` (the keeper's Date.now() when it sent the request).
   */
  | { type: "renewed"; startedAt: number; ids: string[] }
  | { type: "error"; message: string }
  | { type: "ok" }
  | { type: "stopped" };
