import { EventEmitter } from "node:events";
import type { TaskMessage } from "../protocol/message.ts";

/**
 * Everything a worker does that someone may want to watch: the task events stream, metrics, `inspect`,
 * tests. Listeners are called synchronously on the hot path, so they must be cheap and must not throw
 * (a throwing listener is caught and logged by `safeEmit`, never allowed to break the worker).
 */
export interface WorkerEventMap {
  /**
   * Emitted when the task starts (its message is decoded then), with the time the broker handed it over:
   * earlier than now for a task that waited in the worker's prefetch.
   */
  "task:received": [msg: TaskMessage, deliveries: number, receivedAt: number];
  "task:started": [msg: TaskMessage];
  "task:succeeded": [msg: TaskMessage, value: unknown, runtimeMs: number];
  "task:failed": [msg: TaskMessage, error: Error, runtimeMs: number, final: boolean];
  "task:retry": [msg: TaskMessage, error: Error, delaySec: number];
  "task:expired": [msg: TaskMessage];
  "task:revoked": [msg: TaskMessage];
  /** Sent back to the broker to wait for its rate-limit slot, due in `delayMs`. */
  "task:rate-limited": [msg: TaskMessage, delayMs: number];
  "task:progress": [msg: TaskMessage, fraction: number, note: string | undefined];
  /** A message that could not be decoded and went to dead-letter. */
  "task:poisoned": [id: string, queue: string, reason: string];
  "broker:down": [error: Error];
  "broker:up": [downForMs: number];
  /** After each housekeeping round that reached the broker. */
  "worker:tick": [];
  "worker:stopping": [];
}

export class WorkerEvents extends EventEmitter<WorkerEventMap> {
  /** Emit without letting a faulty listener crash the worker. */
  safeEmit<K extends keyof WorkerEventMap>(event: K, ...args: WorkerEventMap[K]): void {
    if (this.listenerCount(event) === 0) return;
    try {
      (this.emit as (e: K, ...a: WorkerEventMap[K]) => boolean)(event, ...args);
    } catch (err) {
      process.emitWarning(`qworker: a "${String(event)}" listener threw: ${(err as Error).message}`);
    }
  }
}
