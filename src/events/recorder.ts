import type { Logger } from "pino";
import { ActivityPublishError } from "../errors.ts";
import type { CounterRow, Transport } from "../broker/transport.ts";
import type { TaskMessage } from "../protocol/message.ts";
import { argsPreview, messageArgsPreview } from "../results/args.ts";
import { roundRuntimeMs } from "../results/record.ts";
import type { TaskRegistry } from "../tasks/registry.ts";
import type { WorkerEventMap, WorkerEvents } from "../worker/events.ts";
import { jsonString as str, preview } from "../worker/format.ts";
import { EventLineBuffer } from "./event-lines.ts";
import { EVENT_VERSION } from "./format.ts";

type Listeners = { [K in keyof WorkerEventMap]?: (...args: WorkerEventMap[K]) => void };

/** Counters are kept this long; `inspect stats` looks back at most an hour. */
export const COUNTERS_TTL_MS = 2 * 60 * 60 * 1000;
export const COUNTER_KINDS = ["received", "succeeded", "failed", "retried", "runtime_ms"] as const;
export type CounterKind = (typeof COUNTER_KINDS)[number];
// Positions in a task's per-minute counts, in COUNTER_KINDS order.
const RECEIVED = 0;
const SUCCEEDED = 1;
const FAILED = 2;
const RETRIED = 3;
const RUNTIME_MS = 4;

const FLUSH_EVERY_MS = 250;
const FLUSH_AT = 1000;
/** While the broker is down, keep at most this many events; older ones are dropped (events are best-effort). */
const BUFFER_MAX = 20_000;
const PREVIEW_MAX = 256;

// Each event is written as JSON text with its fields in the order JSON.stringify gave them when events were
// built as objects ({v, type, id, task, queue, ts, worker, ...}), so the stream holds the same bytes as
// before; test/unit/events-recorder.test.ts compares the two.
const open = (type: string): string => `{"v":${EVENT_VERSION},"type":"${type}","id":`;
const RECEIVED_OPEN = open("task-received");
const STARTED_OPEN = open("task-started");
const SUCCEEDED_OPEN = open("task-succeeded");
const FAILED_OPEN = open("task-failed");
const RETRIED_OPEN = open("task-retried");
const EXPIRED_OPEN = open("task-expired");
const REVOKED_OPEN = open("task-revoked");
const POISONED_OPEN = open("task-poisoned");

export interface RecorderOptions {
  workerId: string;
  /**
   * The worker's events to listen to. Without it nothing is subscribed and the worker reports by calling
   * the task* methods itself (one direct call instead of an emit per lifecycle step).
   */
  events?: WorkerEvents;
  transport: Transport;
  registry: TaskRegistry;
  logger: Logger;
  /** Approximate cap of the broker's events stream. */
  eventsMaxLen: number;
}

/**
 * Turns a worker's lifecycle events into task events on the broker's stream and per-minute counters for
 * `inspect stats`. Nothing is written per task: everything that happens within one flush interval goes in
 * one publishActivity call (on Redis an XADD and a MULTI of counters, sent together; one transaction on SQLite).
 *
 * This runs three times per task on the worker's hot path, so events are written straight to JSON text
 * from cached fragments (no intermediate object, no spread), and counters are one small array per task
 * name and minute instead of a string key per increment.
 */
export class ActivityRecorder {
  /** Events not yet published, oldest first. */
  private lines = new EventLineBuffer();
  /** The minute `counts` belongs to. */
  private minute = -1;
  /** Per task name: increments of the current minute, in COUNTER_KINDS order. */
  private counts = new Map<string, number[]>();
  /** Rows of earlier minutes, and rows handed back by a failed publish. */
  private rows: CounterRow[] = [];
  private dropped = 0;
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly detach: () => void;
  /** `,"worker":"…"`: ends the part every event has. */
  private readonly workerJson: string;
  // `,"task":…,"queue":…,"ts":` of the last task seen: a worker mostly runs one kind of task in a row.
  private tqTask: string | undefined;
  private tqQueue: string | undefined;
  private tq = "";
  private headMsg: TaskMessage | undefined;
  private head = "";

  constructor(private readonly opts: RecorderOptions) {
    this.workerJson = `,"worker":${JSON.stringify(opts.workerId)}`;
    const on: Listeners = {
      "task:received": (msg, deliveries, receivedAt) => this.taskReceived(msg, deliveries, receivedAt),
      "task:started": (msg) => this.taskStarted(msg),
      "task:succeeded": (msg, value, runtimeMs) => this.taskSucceeded(msg, value, runtimeMs),
      "task:failed": (msg, error, runtimeMs, final) => this.taskFailed(msg, error, runtimeMs, final),
      "task:retry": (msg, _error, delaySec) => this.taskRetried(msg, delaySec),
      "task:expired": (msg) => this.taskExpired(msg),
      "task:revoked": (msg) => this.taskRevoked(msg),
      "task:poisoned": (id, queue, reason) => this.taskPoisoned(id, queue, reason),
    };
    // One table drives both subscribing and unsubscribing, so the two cannot drift apart.
    const entries = Object.entries(on) as [keyof WorkerEventMap, (...args: unknown[]) => void][];
    const emitter = opts.events as unknown as NodeJS.EventEmitter | undefined;
    if (emitter) for (const [event, fn] of entries) emitter.on(event, fn);
    this.detach = () => {
      if (emitter) for (const [event, fn] of entries) emitter.off(event, fn);
    };
    this.timer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  // One method per lifecycle step, with the arguments of the matching worker event: the listeners above
  // call them, and a worker that holds the recorder can call them instead of emitting.

  /** `receivedAt`: when the broker handed the task over (a prefetched task is received before it starts). */
  taskReceived(msg: TaskMessage, deliveries: number, receivedAt = Date.now()): void {
    const now = receivedAt;
    const options = this.opts.registry.get(msg.task)?.options;
    // The worker reuses the preview for the stored result, unless a success stores none (then it is not
    // worth keeping: a failure, which does store one, builds it again).
    const args =
      (msg.ignoreResult ?? options?.ignoreResult)
        ? argsPreview(msg.args, msg.kwargs, options?.secretArgs, PREVIEW_MAX)
        : messageArgsPreview(msg, options?.secretArgs, PREVIEW_MAX);
    const waitMs = Math.max(0, now - Math.max(msg.sentAt, msg.eta ?? 0));
    this.add(
      `${RECEIVED_OPEN}${this.headOf(msg)}${now}${this.workerJson},"deliveries":${num(deliveries)},"retries":${num(msg.retries)},"args":${JSON.stringify(args)},"waitMs":${num(waitMs)}}`,
    );
    this.countsOf(msg.task, now)[RECEIVED]! += 1;
  }

  taskStarted(msg: TaskMessage): void {
    this.add(`${STARTED_OPEN}${this.headOf(msg)}${Date.now()}${this.workerJson}}`);
  }

  taskSucceeded(msg: TaskMessage, value: unknown, runtimeMs: number): void {
    const now = Date.now();
    const result = this.secret(msg) ? "" : `,"result":${JSON.stringify(preview(value, PREVIEW_MAX))}`;
    this.add(`${SUCCEEDED_OPEN}${this.headOf(msg)}${now}${this.workerJson},"runtimeMs":${num(roundRuntimeMs(runtimeMs))}${result}}`);
    const c = this.countsOf(msg.task, now);
    c[SUCCEEDED]! += 1;
    c[RUNTIME_MS]! += Math.round(runtimeMs);
  }

  taskFailed(msg: TaskMessage, error: Error, runtimeMs: number, final: boolean): void {
    const now = Date.now();
    const err = JSON.stringify({ type: error.name || "Error", message: error.message.slice(0, PREVIEW_MAX) });
    this.add(`${FAILED_OPEN}${this.headOf(msg)}${now}${this.workerJson},"runtimeMs":${num(roundRuntimeMs(runtimeMs))},"error":${err},"final":${final}}`);
    if (final) this.countsOf(msg.task, now)[FAILED]! += 1;
  }

  taskRetried(msg: TaskMessage, delaySec: number): void {
    const now = Date.now();
    this.add(`${RETRIED_OPEN}${this.headOf(msg)}${now}${this.workerJson},"retries":${num(msg.retries + 1)},"delaySec":${num(delaySec)}}`);
    this.countsOf(msg.task, now)[RETRIED]! += 1;
  }

  taskExpired(msg: TaskMessage): void {
    this.add(`${EXPIRED_OPEN}${this.headOf(msg)}${Date.now()}${this.workerJson}}`);
  }

  taskRevoked(msg: TaskMessage): void {
    this.add(`${REVOKED_OPEN}${this.headOf(msg)}${Date.now()}${this.workerJson}}`);
  }

  /** An undecodable message: no task name, and `reason` comes before `ts`. */
  taskPoisoned(id: string, queue: string, reason: string): void {
    this.add(`${POISONED_OPEN}${str(id)},"queue":${str(queue)},"reason":${JSON.stringify(reason.slice(0, PREVIEW_MAX))},"ts":${Date.now()}${this.workerJson}}`);
  }

  private secret(msg: TaskMessage) {
    return this.opts.registry.get(msg.task)?.options.secretArgs;
  }

  /** `"<id>","task":…,"queue":…,"ts":` for this message. */
  private headOf(msg: TaskMessage): string {
    // The worker reports received and started back to back, and often succeeded next: one entry is enough.
    if (msg === this.headMsg) return this.head;
    if (msg.task !== this.tqTask || msg.queue !== this.tqQueue) {
      this.tqTask = msg.task;
      this.tqQueue = msg.queue;
      this.tq = `,"task":${JSON.stringify(msg.task)},"queue":${JSON.stringify(msg.queue)},"ts":`;
    }
    this.headMsg = msg;
    this.head = `${str(msg.id)}${this.tq}`;
    return this.head;
  }

  private countsOf(task: string, now: number): number[] {
    const minute = Math.floor(now / 60_000);
    if (minute !== this.minute) {
      this.closeMinute();
      this.minute = minute;
    }
    let c = this.counts.get(task);
    if (c === undefined) {
      c = [0, 0, 0, 0, 0];
      this.counts.set(task, c);
    }
    return c;
  }

  /** Move the current minute's counts to `rows`. */
  private closeMinute(): void {
    if (this.counts.size === 0) return;
    for (const [task, c] of this.counts) {
      for (let k = 0; k < COUNTER_KINDS.length; k++) {
        if (c[k] !== 0) this.rows.push({ minute: this.minute, key: `${COUNTER_KINDS[k]}:${task}`, n: c[k]! });
      }
    }
    this.counts = new Map();
  }

  private add(e: string): void {
    this.lines.push(e);
    if (this.lines.count > BUFFER_MAX) this.dropped += this.lines.dropOldest(BUFFER_MAX);
    if (this.lines.count >= FLUSH_AT) void this.flush();
  }

  /** Send what has accumulated; one call in flight at a time. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.closeMinute();
    if (this.lines.count === 0 && this.rows.length === 0) return Promise.resolve();
    const events = this.lines.take();
    const counters = this.rows;
    this.rows = [];
    this.flushing = (async () => {
      try {
        await this.opts.transport.publishActivity?.({ events, eventsMaxLen: this.opts.eventsMaxLen, counters, countersTtlMs: COUNTERS_TTL_MS });
        this.lines.recycle(events);
        if (this.dropped > 0) {
          this.opts.logger.warn(`${this.dropped} task event(s) were dropped while the broker was unreachable (stats undercount them)`);
          this.dropped = 0;
        }
      } catch (err) {
        // Keep what the broker did not store for the next flush (events bounded by BUFFER_MAX; counters
        // merge back in). What it did store is not sent again: a counter sent twice counts twice.
        this.opts.logger.debug({ err }, "publishing task events failed; will retry");
        const landed = err instanceof ActivityPublishError ? err.landed : { events: false, counters: false };
        if (!landed.events) {
          this.lines.putBack(events);
          this.dropped += this.lines.dropOldest(BUFFER_MAX);
        }
        if (!landed.counters) this.rows = mergeRows([...counters, ...this.rows]);
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

/** One row per minute and key, so rows kept across failed publishes do not pile up. */
function mergeRows(rows: CounterRow[]): CounterRow[] {
  const byKey = new Map<string, CounterRow>();
  for (const r of rows) {
    const k = `${r.minute}|${r.key}`;
    const seen = byKey.get(k);
    if (seen) seen.n += r.n;
    else byKey.set(k, { ...r });
  }
  return [...byKey.values()];
}

/** A number as JSON.stringify writes it (non-finite ones become null). */
function num(n: number): string {
  return Number.isFinite(n) ? `${n}` : "null";
}
