/** Celery interop: consume Celery's queues in a qworker worker, send to Celery workers, read Celery results. */
export { createCeleryClient, type CeleryClient, type CeleryClientOptions, type CeleryResultRef, type CelerySendCallOptions } from "./client.ts";
export { defineCeleryTask, type CeleryTaskOptions } from "./define.ts";
export { CeleryConsumer, withCelery, leaseQueue, type CeleryConsumerOptions } from "./consumer.ts";
export { addCelery } from "./worker-setup.ts";
export { celeryConfigSchema, type CeleryConfig } from "./config.ts";
export { CeleryTaskError } from "../protocol/celery/index.ts";
