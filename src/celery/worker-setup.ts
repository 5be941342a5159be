import type { Logger } from "pino";
import type { Transport } from "../broker/transport.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { CeleryConsumer, withCelery } from "./consumer.ts";

/**
 * Wrap a worker's transport so it also consumes the configured Celery queues. Returns the transport to
 * hand to the Worker and a hook to call with the worker's events (STARTED and RETRY results).
 */
export function addCelery(
  inner: Transport,
  config: QWorkerConfig & { broker_url: string },
  logger: Logger,
): { transport: Transport; consumer: CeleryConsumer } | undefined {
  if (!config.celery) return undefined;
  const consumer = new CeleryConsumer({
    inner,
    celery: config.celery,
    brokerUrl: config.broker_url,
    prefix: config.redis_prefix,
    nativeQueues: config.queues,
    logger,
  });
  return { transport: withCelery(inner, consumer), consumer };
}
