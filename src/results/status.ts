import type { TaskLocation, TaskProgress, Transport } from "../broker/transport.ts";
import { taskMessageSchema } from "../protocol/message.ts";
import { decodeResult, type TaskResult } from "./record.ts";

/** A task's state as `qworker result` and `TaskRef.status()` report it: stored, or derived from the broker. */
export interface TaskStatus extends TaskResult {
  /** When a delayed task (countdown, eta, retry backoff) is due, epoch ms. */
  dueAt?: number;
  /** Latest progress of a running task, from its worker's heartbeat. */
  progress?: TaskProgress;
  /** Why a dead-lettered task was parked. */
  deadReason?: string;
}

/**
 * Final states are stored when a task settles; unfinished ones are read from where the task sits in the
 * broker, so the hot path writes nothing extra per task:
 *   no record anywhere    PENDING (unknown ids look the same, as in Celery)
 *   ready                 PENDING (RETRY if it already failed once)
 *   delayed               PENDING with dueAt (RETRY with dueAt after a failure)
 *   active                STARTED, with the worker and the latest progress from its heartbeat;
 *                         RECEIVED if that heartbeat lists it as prefetched, not started yet
 *   dead-lettered         FAILURE with the dead-letter reason (only when no result was stored)
 * The worker's view is as of its last heartbeat (heartbeat_interval), so a task that started since still
 * shows RECEIVED for up to that long.
 */
export async function taskStatus(transport: Transport, id: string): Promise<TaskStatus> {
  const raw = await transport.getResult(id);
  if (raw !== null) return decodeResult(raw);
  const where = transport.describeTask ? await transport.describeTask(id) : null;
  if (!where) return { id, state: "PENDING" };
  return fromLocation(where, await holderOf(transport, where));
}

/** What the holding worker's last heartbeat says about an active task. */
export interface HolderView {
  progress?: TaskProgress;
  /** Leased but not started: waiting in the worker's prefetch. */
  waiting?: boolean;
}

export function fromLocation(where: TaskLocation, holder: HolderView = {}): TaskStatus {
  const msg = taskMessageSchema.partial().safeParse(safeJson(where.payload));
  const m = msg.success ? msg.data : {};
  const retries = m.retries ?? 0;
  const base: TaskStatus = {
    id: where.id,
    state: retries > 0 ? "RETRY" : "PENDING",
    queue: where.queue,
    retries,
    ...(m.task ? { task: m.task } : {}),
    ...(m.sentAt ? { sentAt: m.sentAt } : {}),
  };
  switch (where.state) {
    case "ready":
      return base;
    case "delayed":
      return { ...base, ...(where.dueAt ? { dueAt: where.dueAt } : {}) };
    case "active":
      // A prefetched task is leased (so "active" to the broker) but nothing has run yet.
      if (holder.waiting) return { ...base, state: "RECEIVED", ...(where.workerId ? { worker: where.workerId } : {}) };
      return {
        ...base,
        state: "STARTED",
        ...(where.workerId ? { worker: where.workerId } : {}),
        ...(where.startedAt ? { startedAt: where.startedAt } : {}),
        ...(holder.progress ? { progress: holder.progress } : {}),
      };
    case "dead":
      return { ...base, state: "FAILURE", ...(where.reason ? { deadReason: where.reason } : {}) };
  }
}

async function holderOf(transport: Transport, where: TaskLocation): Promise<HolderView> {
  if (where.state !== "active" || !where.workerId) return {};
  const worker = (await transport.workers()).find((w) => w.id === where.workerId);
  const progress = worker?.progress?.[where.id];
  return { ...(progress ? { progress } : {}), ...(worker?.waiting?.includes(where.id) ? { waiting: true } : {}) };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
