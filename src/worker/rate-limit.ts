import type { Logger } from "pino";
import type { LeaseRef, Transport } from "../broker/transport.ts";
import { encodeMessage, type TaskMessage } from "../protocol/message.ts";
import type { TaskDefinition } from "../tasks/definition.ts";
import { rateLimitInterval } from "../tasks/rate-limit-spec.ts";
import type { WorkerEvents } from "./events.ts";

/**
 * Enforces tasks' `rateLimit` globally through the broker. A task over its limit is sent back to the
 * broker to wait for the slot reserved for it (like a retry, but without counting one), rather than held
 * in a worker slot: waiting tasks then cost no concurrency, so other tasks keep running, and a worker that
 * dies meanwhile loses nothing. The broker decides every admission, so the limit holds however many
 * workers there are and a task never runs before its slot; nothing polls while tasks wait.
 */
export class RateLimiter {
  private readonly intervals = new Map<string, number | undefined>();
  private warnedUnsupported = false;

  constructor(
    private readonly transport: Transport,
    private readonly logger: Logger,
    private readonly events: WorkerEvents,
    /** A lease that could not be handed back (broker unreachable): the worker hands it back later. */
    private readonly strand: (ref: LeaseRef) => void,
  ) {}

  private interval(def: TaskDefinition, name: string): number | undefined {
    const spec = def.options.rateLimit;
    if (spec === undefined) return undefined;
    if (!this.intervals.has(name)) {
      const interval = rateLimitInterval(spec);
      if (interval === undefined) {
        this.logger.error(`task ${name}: invalid rateLimit "${spec}": expected N/s, N/m or N/h (e.g. "100/m"); running it without a limit`);
      }
      this.intervals.set(name, interval);
    }
    return this.intervals.get(name);
  }

  /**
   * True when the task must wait: it has then been handed back to the broker (or left leased to be
   * redelivered, if the broker could not be reached) and the caller must not run it.
   */
  async deferred(def: TaskDefinition, msg: TaskMessage, ref: LeaseRef): Promise<boolean> {
    const interval = this.interval(def, msg.task);
    if (interval === undefined) return false;
    if (!this.transport.rateLimit) {
      if (!this.warnedUnsupported) {
        this.warnedUnsupported = true;
        this.logger.warn(`the ${this.transport.kind} broker does not enforce rate limits; ${msg.task} runs unlimited`);
      }
      return false;
    }
    const label = `${msg.task}[${msg.id}]`;
    let waitMs: number;
    try {
      waitMs = await this.transport.rateLimit(msg.task, interval, msg.id);
    } catch (err) {
      this.logger.error(`task ${label}: rate limit check failed (${(err as Error).message}); handing it back`);
      await this.transport.release([ref]).catch(() => this.strand(ref));
      return true;
    }
    if (waitMs <= 0) return false;
    try {
      await this.transport.retry({ ...ref, priority: msg.priority, payload: encodeMessage(msg), dueAt: Date.now() + waitMs });
    } catch (err) {
      // Still leased to us: handed back once the broker answers, it is delivered again and asks again.
      this.logger.error(`task ${label}: could not send it back to wait for its rate limit (${(err as Error).message}); it will be redelivered`);
      this.strand(ref);
      return true;
    }
    this.logger.info(`task ${label} rate-limited (${def.options.rateLimit}): runs in ${(waitMs / 1000).toFixed(2)} s`);
    this.events.safeEmit("task:rate-limited", msg, waitMs);
    return true;
  }
}
