import type { LeaseRef, WorkerInfo } from "../broker/transport.ts";

/** What the lease keeper's thread is started with. */
export interface KeeperConfig {
  brokerUrl: string;
  redisPrefix?: string;
  leaseMs: number;
  heartbeatIntervalMs: number;
  heartbeatTtlMs: number;
  /** How often the thread looks whether a renewal or a beat is due. */
  tickMs: number;
}

export type ToKeeper =
  | { type: "add"; ref: LeaseRef }
  | { type: "remove"; id: string; token: string }
  | { type: "info"; info: WorkerInfo }
  | { type: "stop" }
  /** Several of the above, in order (the worker posts at most once per event-loop turn). */
  | { type: "batch"; messages: ToKeeper[] };

export type FromKeeper =
  | { type: "ready" }
  | { type: "fatal"; message: string }
  | { type: "lost"; refs: LeaseRef[] }
  | { type: "error"; message: string }
  | { type: "ok" }
  | { type: "stopped" };
