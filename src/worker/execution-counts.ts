import type { WorkerEvents } from "./events.ts";

/**
 * Counts of the execution outcomes beyond success and failure, for `inspect` (they ride on the
 * heartbeat's WorkerInfo). Built from the worker's events, so counting costs the worker nothing extra.
 */
export class ExecutionCounts {
  private readonly counts: Record<string, number> = {
    retried: 0,
    timeLimited: 0,
    expired: 0,
    revoked: 0,
    rateLimited: 0,
    childLost: 0,
  };

  constructor(events: WorkerEvents) {
    events.on("task:retry", () => this.counts.retried!++);
    events.on("task:expired", () => this.counts.expired!++);
    events.on("task:revoked", () => this.counts.revoked!++);
    events.on("task:rate-limited", () => this.counts.rateLimited!++);
    events.on("task:failed", (_msg, err) => {
      const code = (err as { code?: unknown }).code;
      if (code === "E_TIME_LIMIT") this.counts.timeLimited!++;
      else if (code === "E_WORKER_LOST") this.counts.childLost!++;
    });
  }

  snapshot(): Record<string, number> {
    return { ...this.counts };
  }
}
