import type { CounterRow } from "../../broker/transport.ts";

export interface TaskStats {
  task: string;
  received: number;
  succeeded: number;
  failed: number;
  retried: number;
  /** Finished (succeeded + failed) per minute over the window. */
  perMinute: number;
  /** failed / (succeeded + failed); 0 when nothing finished. */
  failureRate: number;
  /** Mean handler run time of successful runs, ms. */
  avgRuntimeMs: number | null;
}

export interface StatsReport {
  minutes: number;
  /** Epoch ms of the start of the window (whole minutes). */
  since: number;
  tasks: TaskStats[];
  total: Omit<TaskStats, "task">;
  /** One line per counter key or field the broker holds in a form qworker never writes, left out above. */
  notes?: string[];
}

/**
 * Fold per-minute counters into per-task figures over the last `minutes` whole minutes, the current
 * (partial) minute included, so the window is between minutes-1 and minutes long.
 */
export function summarize(rows: CounterRow[], minutes: number, nowMs: number): StatsReport {
  const first = Math.floor(nowMs / 60_000) - minutes + 1;
  const by = new Map<string, Record<string, number>>();
  for (const r of rows) {
    // A custom transport's bad value would otherwise make every sum it reaches NaN.
    if (r.minute < first || !Number.isFinite(r.n)) continue;
    const colon = r.key.indexOf(":");
    if (colon < 0) continue;
    const kind = r.key.slice(0, colon);
    const task = r.key.slice(colon + 1);
    const t = by.get(task) ?? {};
    t[kind] = (t[kind] ?? 0) + r.n;
    by.set(task, t);
  }
  const make = (task: string, c: Record<string, number>): TaskStats => {
    const succeeded = c.succeeded ?? 0;
    const failed = c.failed ?? 0;
    const finished = succeeded + failed;
    return {
      task,
      received: c.received ?? 0,
      succeeded,
      failed,
      retried: c.retried ?? 0,
      perMinute: round2(finished / minutes),
      failureRate: finished === 0 ? 0 : round2(failed / finished),
      avgRuntimeMs: succeeded === 0 ? null : round2((c.runtime_ms ?? 0) / succeeded),
    };
  };
  const tasks = [...by.entries()].map(([task, c]) => make(task, c)).sort((a, b) => b.received - a.received || a.task.localeCompare(b.task));
  const sum: Record<string, number> = {};
  for (const c of by.values()) for (const [k, n] of Object.entries(c)) sum[k] = (sum[k] ?? 0) + n;
  const { task: _unused, ...total } = make("", sum);
  void _unused;
  return { minutes, since: first * 60_000, tasks, total };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
