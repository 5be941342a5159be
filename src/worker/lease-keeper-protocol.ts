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
  /**
   * What changed since the last post. Leases travel as flat string arrays (add: id, token, queue, ...;
   * remove: id, token, ...) because a busy worker posts thousands a second and cloning flat strings is far
   * cheaper than cloning an object per lease. The thread applies the adds before the removes, which is
   * right in every order they can have happened in (tokens are never reused).
   */
  | { type: "leases"; add: string[]; remove: string[]; info?: WorkerInfo }
  | { type: "stop" };

export type FromKeeper =
  | { type: "ready" }
  | { type: "fatal"; message: string }
  | { type: "lost"; refs: LeaseRef[] }
  | { type: "error"; message: string }
  | { type: "ok" }
  | { type: "stopped" };
