import type { ChalkInstance } from "chalk";
import type { ActiveTask, DeadTask, QueueCounts, ScheduledTask, TaskProgress, Transport, WorkerInfo } from "../../broker/transport.ts";
import { decodeEvent, type TaskEvent } from "../../events/format.ts";
import { duration, idCell, isoTime, peekPayload, progressText, relative, table, truncate } from "./format.ts";
import { summarize, type StatsReport } from "./stats.ts";

/**
 * Each `inspect` view is a fetch (broker → plain data, which is also the --json output) and a pure render
 * (data → text), so the renderers are unit-tested without a broker and --watch just repeats both.
 */
export interface View<D> {
  fetch(transport: Transport, now: number): Promise<D>;
  render(data: D, now: number, c: ChalkInstance): string;
}

export interface ViewOptions {
  limit: number;
  queue?: string;
  minutes: number;
}

// ------------------------------------------------------------------ queues

// The default view: `{"queues":[…],"workers":[…]}` is the documented `inspect --json` shape (issue 2), so
// the workers are listed in full here too, not only counted.
export interface QueuesData {
  queues: QueueCounts[];
  workers: WorkerRow[];
}

export const queuesView = (): View<QueuesData> => ({
  async fetch(t, now) {
    const [queues, workers] = await Promise.all([t.stats(), t.workers()]);
    return { queues, workers: workers.map((w) => workerRow(w, now)) };
  },
  render: renderQueues,
});

export function renderQueues(d: QueuesData, now: number, c: ChalkInstance): string {
  const body = d.queues.length === 0 ? "no queues yet" : table(["queue", "ready", "delayed", "active", "dead"], d.queues.map((q) => [q.name, q.ready, q.delayed, q.active, q.dead > 0 ? c.red(String(q.dead)) : 0]));
  return `${body}\n\n${renderWorkers(d, now, c)}`;
}

// ------------------------------------------------------------------ workers

export interface WorkerRow extends Omit<WorkerInfo, "progress" | "waiting" | "succeeded"> {
  /** Tasks leased and waiting in its prefetch (their ids are in `inspect active`). */
  prefetched: number;
  /** Tasks this worker finished: succeeded, failed for good, revoked or expired (a retried run is not finished). */
  processed: number;
  succeeded: number;
  /**
   * Always true: the brokers list a worker only while its heartbeat is current (its own heartbeat_ttl), and
   * one whose heartbeat lapsed is gone from the list. Kept so scripts that select on it go on working.
   */
  alive: true;
  uptimeMs: number;
  /** active / concurrency */
  load: number;
}

export const workersView = (): View<{ workers: WorkerRow[] }> => ({
  async fetch(t, now) {
    return { workers: (await t.workers()).map((w) => workerRow(w, now)) };
  },
  render: renderWorkers,
});

export function workerRow(w: WorkerInfo, now: number): WorkerRow {
  const { progress: _p, waiting, succeeded, ...info } = w;
  void _p;
  // A worker before 0.2 sent no `succeeded`, and its `processed` counted successes only.
  const counts = succeeded === undefined ? { processed: w.processed + w.failed, succeeded: w.processed } : { processed: w.processed, succeeded };
  return {
    ...info,
    ...counts,
    prefetched: waiting?.length ?? 0,
    alive: true,
    uptimeMs: Math.max(0, now - w.startedAt),
    load: w.concurrency > 0 ? Math.round((w.active / w.concurrency) * 100) / 100 : 0,
  };
}

export function renderWorkers(d: { workers: WorkerRow[] }, _now: number, c: ChalkInstance): string {
  if (d.workers.length === 0) return "no live workers\n";
  const rows = d.workers.map((w) => [
    w.id,
    w.host,
    w.pid,
    w.pool,
    w.concurrency,
    duration(w.uptimeMs),
    w.processed,
    w.succeeded,
    w.failed > 0 ? c.red(String(w.failed)) : 0,
    `${w.active}/${w.concurrency} (${Math.round(w.load * 100)}%)`,
  ]);
  return `${table(["worker", "host", "pid", "pool", "concurrency", "uptime", "processed", "succeeded", "failed", "load"], rows)}\n`;
}

// ------------------------------------------------------------------ active

export interface ActiveRow {
  id: string;
  /** A Celery message's task id; `id` is then the worker's `celery:…` lease id. */
  celeryId?: string;
  task?: string;
  queue: string;
  /** The worker holding the lease: `worker`, as in `result --json` and the task events. */
  worker: string;
  startedAt: number;
  runtimeMs: number;
  deliveries: number;
  leaseUntil: number;
  progress?: TaskProgress;
  /** Leased but not started: waiting in its worker's prefetch (as of that worker's last heartbeat). */
  waiting?: boolean;
}

export const activeView = (o: ViewOptions): View<{ active: ActiveRow[] }> => ({
  async fetch(t, now) {
    const [active, workers] = await Promise.all([t.listActive(o.limit), t.workers()]);
    return { active: activeRows(active, workers, now) };
  },
  render: renderActive,
});

export function activeRows(active: ActiveTask[], workers: WorkerInfo[], now: number): ActiveRow[] {
  const progress = new Map<string, TaskProgress>();
  const waiting = new Set<string>();
  for (const w of workers) {
    for (const [id, p] of Object.entries(w.progress ?? {})) progress.set(id, p);
    for (const id of w.waiting ?? []) waiting.add(id);
  }
  return active.map((a) => {
    const p = progress.get(a.id);
    const { task, celeryId } = peekPayload(a.payload);
    const isWaiting = waiting.has(a.id);
    return {
      id: a.id,
      ...(celeryId ? { celeryId } : {}),
      ...(task ? { task } : {}),
      queue: a.queue,
      worker: a.workerId,
      startedAt: a.startedAt,
      // A prefetched task's lease started when it was fetched; it has not run at all.
      runtimeMs: a.startedAt && !isWaiting ? Math.max(0, now - a.startedAt) : 0,
      deliveries: a.deliveries,
      leaseUntil: a.leaseUntil,
      ...(p ? { progress: p } : {}),
      ...(isWaiting ? { waiting: true } : {}),
    };
  });
}

export function renderActive(d: { active: ActiveRow[] }, _now: number, c: ChalkInstance): string {
  if (d.active.length === 0) return "no running tasks\n";
  const rows = d.active.map((a) => [
    idCell(a.id, a.celeryId),
    a.task ?? "?",
    a.queue,
    truncate(a.worker, 40),
    a.waiting ? c.dim("prefetched") : duration(a.runtimeMs),
    a.progress ? c.cyan(progressText(a.progress)) : "-",
    a.deliveries > 1 ? c.yellow(String(a.deliveries)) : a.deliveries,
  ]);
  return `${table(["id", "task", "queue", "worker", "running for", "progress", "deliveries"], rows)}\n`;
}

// ------------------------------------------------------------------ scheduled

export interface ScheduledRow {
  id: string;
  /** A Celery message's task id; `id` is then the worker's `celery:…` lease id. */
  celeryId?: string;
  task?: string;
  queue: string;
  dueAt: number;
  retries: number;
}

export const scheduledView = (o: ViewOptions): View<{ scheduled: ScheduledRow[] }> => ({
  async fetch(t) {
    return { scheduled: scheduledRows(await t.listScheduled(o.limit)) };
  },
  render: renderScheduled,
});

export function scheduledRows(list: ScheduledTask[]): ScheduledRow[] {
  return list.map((s) => {
    const { task, retries, celeryId } = peekPayload(s.payload);
    return { id: s.id, ...(celeryId ? { celeryId } : {}), ...(task ? { task } : {}), queue: s.queue, dueAt: s.dueAt, retries: retries ?? 0 };
  });
}

export function renderScheduled(d: { scheduled: ScheduledRow[] }, now: number, c: ChalkInstance): string {
  if (d.scheduled.length === 0) return "no scheduled tasks\n";
  const rows = d.scheduled.map((s) => [idCell(s.id, s.celeryId), s.task ?? "?", s.queue, isoTime(s.dueAt), relative(s.dueAt, now), s.retries > 0 ? c.yellow(`retry ${s.retries}`) : "-"]);
  return `${table(["id", "task", "queue", "due", "when", "retry"], rows)}\n`;
}

// ------------------------------------------------------------------ dead

export interface DeadRow {
  id: string;
  /** A Celery message's task id; `id` is then the worker's `celery:…` lease id. */
  celeryId?: string;
  task?: string;
  queue: string;
  reason: string;
  error?: string;
  deadAt: number;
  deliveries: number;
}

export const deadView = (o: ViewOptions): View<{ dead: DeadRow[] }> => ({
  async fetch(t) {
    return { dead: deadRows(await t.listDead(o.queue, o.limit)) };
  },
  render: renderDead,
});

export function deadRows(list: DeadTask[]): DeadRow[] {
  return list.map((d) => {
    const { task, celeryId } = peekPayload(d.payload);
    return { id: d.id, ...(celeryId ? { celeryId } : {}), ...(task ? { task } : {}), queue: d.queue, reason: d.reason, ...(d.error ? { error: d.error } : {}), deadAt: d.deadAt, deliveries: d.deliveries };
  });
}

export function renderDead(d: { dead: DeadRow[] }, now: number, c: ChalkInstance): string {
  if (d.dead.length === 0) return "no dead-lettered tasks\n";
  const rows = d.dead.map((x) => [idCell(x.id, x.celeryId), x.task ?? "?", x.queue, c.red(truncate(x.reason, 60)), relative(x.deadAt, now), x.deliveries]);
  return `${table(["id", "task", "queue", "reason", "dead since", "deliveries"], rows)}\n`;
}

// ------------------------------------------------------------------ stats

export const statsView = (o: ViewOptions): View<StatsReport> => ({
  async fetch(t, now) {
    if (!t.readCounters) return summarize([], o.minutes, now);
    const since = Math.floor(now / 60_000) - o.minutes + 1;
    const notes: string[] = [];
    const report = summarize(await t.readCounters(since, (line) => notes.push(line)), o.minutes, now);
    return notes.length > 0 ? { ...report, notes } : report;
  },
  render: renderStats,
});

export function renderStats(d: StatsReport, _now: number, c: ChalkInstance): string {
  const head = `last ${d.minutes} minute${d.minutes === 1 ? "" : "s"} (since ${isoTime(d.since)})`;
  const notes = (d.notes ?? []).map((n) => `${c.yellow(`note: ${n}`)}\n`).join("");
  if (d.tasks.length === 0) return `${head}\nno task activity recorded (workers record it unless events_max_len is 0)\n${notes}`;
  const pct = (r: number) => `${(r * 100).toFixed(1)}%`;
  const row = (name: string, s: Omit<StatsReport["tasks"][number], "task">) => [
    name,
    s.received,
    s.succeeded,
    s.failed > 0 ? c.red(String(s.failed)) : 0,
    s.retried,
    s.perMinute,
    s.failureRate > 0 ? c.red(pct(s.failureRate)) : pct(0),
    s.avgRuntimeMs === null ? "-" : duration(s.avgRuntimeMs),
  ];
  const rows = d.tasks.map((t) => row(t.task, t));
  if (d.tasks.length > 1) rows.push(row(c.bold("all"), d.total));
  return `${head}\n${table(["task", "received", "succeeded", "failed", "retried", "per min", "failure rate", "avg runtime"], rows)}\n${notes}`;
}

// ------------------------------------------------------------------ events

export const eventsView = (o: ViewOptions): View<{ events: TaskEvent[] }> => ({
  async fetch(t) {
    if (!t.readEvents) return { events: [] };
    const events = (await t.readEvents(o.limit)).map((e) => decodeEvent(e.data)).filter((e): e is TaskEvent => e !== null);
    return { events };
  },
  render: renderEvents,
});

export function renderEvents(d: { events: TaskEvent[] }, _now: number, c: ChalkInstance): string {
  if (d.events.length === 0) return "no task events recorded\n";
  const color = (type: string) => (type === "task-succeeded" ? c.green : type === "task-failed" || type === "task-poisoned" ? c.red : type === "task-retried" ? c.yellow : (s: string) => s);
  const lines = d.events.map((e) => {
    const extra = e.error ? ` ${e.error.type}: ${e.error.message}` : e.runtimeMs !== undefined ? ` ${duration(e.runtimeMs)}` : e.reason ? ` ${e.reason}` : "";
    return `${isoTime(e.ts)} ${color(e.type)(e.type.padEnd(14))} ${e.task ?? "?"}[${e.id}]${extra}`;
  });
  return `${lines.join("\n")}\n`;
}
