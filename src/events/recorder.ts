import type { Logger } from "pino";
import type { CounterRow, Transport } from "../broker/transport.ts";
import type { TaskMessage } from "../protocol/message.ts";
import { messageArgsPreview } from "../results/args.ts";
import type { TaskRegistry } from "../tasks/registry.ts";
import type { WorkerEventMap, WorkerEvents } from "../worker/events.ts";

type Listeners = { [K in keyof WorkerEventMap]?: (...args: WorkerEventMap[K]) => void };
import { preview } from "../worker/format.ts";
import { EVENT_VERSION, encodeEvent, type TaskEvent } from "./format.ts";

/** Counters are kept this long; `inspect stats` looks back at most an hour. */
export const COUNTERS_TTL_MS = 2 * 60 * 60 * 1000;
export const COUNTER_KINDS = ["received", "succeeded", "failed", "retried", "runtime_ms"] as const;
export type CounterKind = (typeof COUNTER_KINDS)[number];

const FLUSH_EVERY_MS = 250;
const FLUSH_AT = 1000;
/** While the broker is down, keep at most this many events; older ones are dropped (events are best-effort). */
const BUFFER_MAX = 20_000;
const PREVIEW_MAX = 256;

export interface RecorderOptions {
  workerId: string;
  events: WorkerEvents;
  transport: Transport;
  registry: TaskRegistry;
  logger: Logger;
  /** Approximate cap of the broker's events stream. */
  eventsMaxLen: number;
}

/**
 * Turns a worker's lifecycle events into task events on the broker's stream and per-minute counters for
 * `inspect stats`. Nothing is written per task: everything that happens within one flush interval goes in
 * one publishActivity call (one pipeline on Redis, one transaction on SQLite).
 */
export class ActivityRecorder {
  private buffer: TaskEvent[] = [];
  private counters = new Map<string, number>();
  private dropped = 0;
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly detach: () => void;

  constructor(private readonly opts: RecorderOptions) {
    const { events } = opts;
    const on: Listeners = {
      "task:received": (msg: TaskMessage, deliveries: number) => {
        const dueAt = Math.max(msg.sentAt, msg.eta ?? 0);
        this.push(msg, "task-received", {
          deliveries,
          retries: msg.retries,
          args: messageArgsPreview(msg, this.secret(msg), PREVIEW_MAX),
          waitMs: Math.max(0, Date.now() - dueAt),
        });
        this.count("received", msg.task);
      },
      "task:started": (msg: TaskMessage) => this.push(msg, "task-started", {}),
      "task:succeeded": (msg: TaskMessage, value: unknown, runtimeMs: number) => {
        this.push(msg, "task-succeeded", { runtimeMs: round(runtimeMs), ...(this.secret(msg) ? {} : { result: preview(value, PREVIEW_MAX) }) });
        this.count("succeeded", msg.task);
        this.count("runtime_ms", msg.task, Math.round(runtimeMs));
      },
      "task:failed": (msg: TaskMessage, error: Error, runtimeMs: number, final: boolean) => {
        this.push(msg, "task-failed", { runtimeMs: round(runtimeMs), error: { type: error.name || "Error", message: error.message.slice(0, PREVIEW_MAX) }, final });
        if (final) this.count("failed", msg.task);
      },
      "task:retry": (msg: TaskMessage, _error: Error, delaySec: number) => {
        this.push(msg, "task-retried", { retries: msg.retries + 1, delaySec });
        this.count("retried", msg.task);
      },
      "task:expired": (msg: TaskMessage) => this.push(msg, "task-expired", {}),
      "task:revoked": (msg: TaskMessage) => this.push(msg, "task-revoked", {}),
      "task:poisoned": (id: string, queue: string, reason: string) =>
        this.add({ v: EVENT_VERSION, type: "task-poisoned", id, queue, reason: reason.slice(0, PREVIEW_MAX), ts: Date.now(), worker: opts.workerId }),
    };
    // One table drives both subscribing and unsubscribing, so the two cannot drift apart.
    const entries = Object.entries(on) as [keyof WorkerEventMap, (...args: unknown[]) => void][];
    const emitter = events as unknown as NodeJS.EventEmitter;
    for (const [event, fn] of entries) emitter.on(event, fn);
    this.detach = () => {
      for (const [event, fn] of entries) emitter.off(event, fn);
    };
    this.timer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  private secret(msg: TaskMessage) {
    return this.opts.registry.get(msg.task)?.options.secretArgs;
  }

  private push(msg: TaskMessage, type: TaskEvent["type"], extra: Partial<TaskEvent>): void {
    this.add({ v: EVENT_VERSION, type, id: msg.id, task: msg.task, queue: msg.queue, ts: Date.now(), worker: this.opts.workerId, ...extra });
  }

  private add(e: TaskEvent): void {
    this.buffer.push(e);
    if (this.buffer.length > BUFFER_MAX) this.dropped += this.buffer.splice(0, this.buffer.length - BUFFER_MAX).length;
    if (this.buffer.length >= FLUSH_AT) void this.flush();
  }

  private count(kind: CounterKind, task: string, by = 1): void {
    const key = `${Math.floor(Date.now() / 60_000)}|${kind}:${task}`;
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  /** Send what has accumulated; one call in flight at a time. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.buffer.length === 0 && this.counters.size === 0) return Promise.resolve();
    const events = this.buffer;
    const counters = this.counters;
    this.buffer = [];
    this.counters = new Map();
    const rows: CounterRow[] = [];
    for (const [k, n] of counters) {
      const bar = k.indexOf("|");
      rows.push({ minute: Number(k.slice(0, bar)), key: k.slice(bar + 1), n });
    }
    this.flushing = (async () => {
      try {
        await this.opts.transport.publishActivity?.({
          events: events.map(encodeEvent),
          eventsMaxLen: this.opts.eventsMaxLen,
          counters: rows,
          countersTtlMs: COUNTERS_TTL_MS,
        });
        if (this.dropped > 0) {
          this.opts.logger.warn(`${this.dropped} task event(s) were dropped while the broker was unreachable (stats undercount them)`);
          this.dropped = 0;
        }
      } catch (err) {
        // Keep them for the next flush (bounded by BUFFER_MAX); counters merge back in.
        this.opts.logger.debug({ err }, "publishing task events failed; will retry");
        const kept = [...events, ...this.buffer];
        this.dropped += Math.max(0, kept.length - BUFFER_MAX);
        this.buffer = kept.slice(-BUFFER_MAX);
        for (const [k, n] of counters) this.counters.set(k, (this.counters.get(k) ?? 0) + n);
      } finally {
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  /** Stop listening and send what is left (best-effort). */
  async close(): Promise<void> {
    this.detach();
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
