import { Chalk, type ChalkInstance } from "chalk";
import Table from "cli-table3";
import { celeryMessageSummary } from "../../protocol/celery/index.ts";

/** Colour only for a person at a terminal: never in pipes, with --json, or when NO_COLOR is set. */
export function colorFor(opts: { json?: boolean; stream?: NodeJS.WriteStream; env?: NodeJS.ProcessEnv } = {}): ChalkInstance {
  const stream = opts.stream ?? process.stdout;
  const env = opts.env ?? process.env;
  const on = !opts.json && stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === "");
  return new Chalk({ level: on ? 1 : 0 });
}

export const plain = new Chalk({ level: 0 });

export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r);
  return t.toString();
}

/** "850 ms", "12.3 s", "4m 05s", "2h 03m", "3d 04h". */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const pad = (n: number) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${pad((s % 86_400) / 3600)}h`;
}

/** A due time relative to now: "in 4.0 s", "12.0 s ago". */
export function relative(at: number, now: number): string {
  return at >= now ? `in ${duration(at - now)}` : `${duration(now - at)} ago`;
}

export function isoTime(ms: number | undefined): string {
  if (!ms) return "-";
  const d = new Date(ms);
  // A time no Date can hold (stored by an older or foreign sender) is shown as stored instead of throwing.
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

export function progressText(p: { fraction: number; note?: string } | undefined): string {
  if (!p) return "-";
  return `${Math.round(p.fraction * 100)}%${p.note ? ` ${p.note}` : ""}`;
}

export function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * Task name and retries from an opaque payload, without trusting it. A Celery message (the kombu envelope
 * a worker holds under a `celery:…` lease) gives its task name and retries too, and its Celery task id as
 * `celeryId`: the lease id alone matches nothing the Celery app knows.
 */
export function peekPayload(payload: string): { task?: string; retries?: number; celeryId?: string } {
  let m: unknown;
  try {
    m = JSON.parse(payload);
  } catch {
    return {};
  }
  if (typeof m !== "object" || m === null || Array.isArray(m)) return {};
  const o = m as Record<string, unknown>;
  if (typeof o.task !== "string" && ("headers" in o || "body" in o)) {
    const { id, task, retries } = celeryMessageSummary(o);
    return { ...(task ? { task } : {}), ...(retries !== undefined ? { retries } : {}), ...(id ? { celeryId: id } : {}) };
  }
  return {
    ...(typeof o.task === "string" ? { task: o.task } : {}),
    ...(typeof o.retries === "number" ? { retries: o.retries } : {}),
  };
}

/** A table's id cell: the lease id (what requeue/revoke take), and under it a Celery message's task id. */
export function idCell(id: string, celeryId: string | undefined): string {
  return celeryId ? `${id}\ncelery ${celeryId}` : id;
}
