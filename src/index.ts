/** The library API: define tasks, send them from application code, wait for their results. */
export { defineTask, type TaskHandle } from "./tasks/define.ts";
export type { TaskOptions } from "./tasks/definition.ts";
export { taskContext, type TaskContext } from "./tasks/context.ts";
export { createClient, type Client, type ClientOptions } from "./client/client.ts";
export { closeDefaultClient } from "./client/default.ts";
export type { SendOptions, TaskCall, TaskRef } from "./client/types.ts";
export type { TaskResult, TaskState } from "./results/record.ts";
export type { RevokeReport, Transport } from "./broker/transport.ts";
export {
  QWorkerError,
  NonRetryableError,
  SoftTimeLimitExceeded,
  TimeLimitExceeded,
  ResultTimeoutError,
  ResultIgnoredError,
  BrokerError,
  ConfigError,
  ReplicationError,
} from "./errors.ts";
// Celery interop (docs/celery.md): send to Celery workers, read Celery results, Celery-style tasks.
export { createCeleryClient, type CeleryClient, type CeleryClientOptions, type CeleryResultRef, type CelerySendCallOptions } from "./celery/client.ts";
export { defineCeleryTask, type CeleryTaskOptions } from "./celery/define.ts";
export { CeleryTaskError } from "./protocol/celery/result.ts";
