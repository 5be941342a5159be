import { MessageError } from "../errors.ts";
import type { TaskMessage } from "../protocol/message.ts";
import {
  failureMeta,
  notRegisteredMeta,
  revokedMeta,
  serializeResultMeta,
  successMeta,
  type CeleryResultMeta,
  type CeleryTaskRequest,
} from "../protocol/celery/index.ts";
import { errorFromInfo, type TaskResult } from "../results/record.ts";

/**
 * The two translations between a Celery request and what qworker's worker runs: a decoded kombu message
 * becomes a TaskMessage (so the worker's own decode, expiry, retry and time-limit logic apply unchanged),
 * and the TaskResult the worker records becomes the meta a Celery client reads.
 */

/** The qworker view of a Celery request. `queue` is the kombu queue the message came from. */
export function toTaskMessage(req: CeleryTaskRequest, queue: string, receivedAt: number): TaskMessage {
  return {
    v: 1,
    id: req.id,
    task: req.task,
    args: req.args,
    kwargs: req.kwargs,
    queue,
    // Redis kombu serves priority 0 first; qworker serves 9 first.
    priority: 9 - req.priority,
    retries: req.retries,
    // Celery messages carry no send time; the receive time is the closest thing we know.
    sentAt: receivedAt,
    ...(req.eta !== undefined ? { eta: req.eta } : {}),
    ...(req.expires !== undefined ? { expires: req.expires } : {}),
    ...(req.hardTimeLimitMs ? { timeLimitMs: req.hardTimeLimitMs } : {}),
    ...(req.softTimeLimitMs ? { softTimeLimitMs: req.softTimeLimitMs } : {}),
    ...(req.ignoreResult ? { ignoreResult: true } : {}),
    ...(req.origin ? { origin: req.origin } : {}),
  };
}

/**
 * The Celery meta for a result the worker recorded (the JSON in SettleItem.result). Returns undefined
 * for states Celery has no stored form of.
 */
export function celeryMetaFromRecord(taskId: string, encodedRecord: string): CeleryResultMeta | undefined {
  let record: TaskResult;
  try {
    record = JSON.parse(encodedRecord) as TaskResult;
  } catch (err) {
    throw new MessageError(`worker result for ${taskId} is not JSON (${(err as Error).message})`);
  }
  switch (record.state) {
    case "SUCCESS":
      return successMeta(taskId, record.result ?? null);
    case "FAILURE": {
      const info = record.error ?? { type: "Error", message: "task failed" };
      // Celery stores the bare task name as NotRegistered's argument, not a sentence.
      if (info.type === "NotRegisteredError") return notRegisteredMeta(taskId, record.task ?? "");
      return failureMeta(taskId, errorFromInfo(info));
    }
    case "EXPIRED":
      return revokedMeta(taskId, "expired");
    case "REVOKED":
      return revokedMeta(taskId, "revoked");
    default:
      return undefined;
  }
}

export function metaText(meta: CeleryResultMeta): string {
  return serializeResultMeta(meta);
}
