import type { TaskProgress } from "../broker/transport.ts";

/** Heartbeats carry progress for at most this many tasks, so a huge pool cannot bloat its worker record. */
export const PROGRESS_MAX_TASKS = 500;
const NOTE_MAX = 120;

/** Validate a ctx.progress() report: a bad fraction from user code is clamped, never thrown. */
export function clampProgress(fraction: number, note?: string): TaskProgress {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const n = typeof note === "string" && note.length > 0 ? note.slice(0, NOTE_MAX) : undefined;
  return { fraction: f, ...(n ? { note: n } : {}), at: Date.now() };
}

/** The ids of prefetched tasks a worker sends with its heartbeat; undefined when none waits. */
export function waitingIds(prefetched: readonly { ref: { id: string } }[]): string[] | undefined {
  if (prefetched.length === 0) return undefined;
  return prefetched.slice(0, PROGRESS_MAX_TASKS).map((t) => t.ref.id);
}

/** The progress map a worker sends with its heartbeat; undefined when no running task reported any. */
export function progressOf(running: Iterable<{ ref: { id: string }; progress?: TaskProgress }>): Record<string, TaskProgress> | undefined {
  let out: Record<string, TaskProgress> | undefined;
  let n = 0;
  for (const r of running) {
    if (!r.progress) continue;
    (out ??= {})[r.ref.id] = r.progress;
    if (++n >= PROGRESS_MAX_TASKS) break;
  }
  return out;
}
