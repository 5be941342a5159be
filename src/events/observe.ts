import type { Logger } from "pino";
import type { Transport } from "../broker/transport.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import type { TaskRegistry } from "../tasks/registry.ts";
import type { Worker } from "../worker/worker.ts";
import { ActivityRecorder } from "./recorder.ts";

export interface Observers {
  /** The port metrics are served on, when they are. */
  metricsPort?: number;
  /** Flush pending events and stop serving metrics; call after worker.stop(), before closing the transport. */
  close(): Promise<void>;
}

/**
 * Everything that watches a worker from the outside: the task events stream and counters (unless
 * events_max_len is 0) and the Prometheus endpoint (when metrics_port is set). A metrics port that cannot
 * be opened is logged and skipped: observability must never keep a worker from consuming.
 */
export async function startObservers(opts: {
  worker: Worker;
  transport: Transport;
  registry: TaskRegistry;
  config: QWorkerConfig;
  logger: Logger;
}): Promise<Observers> {
  const { worker, transport, registry, config, logger } = opts;
  const closers: (() => Promise<void>)[] = [];
  const out: Observers = {
    async close() {
      for (const c of closers.splice(0).reverse()) await c().catch((err: Error) => logger.debug({ err }, "observer close failed"));
    },
  };
  if (config.events_max_len > 0 && transport.publishActivity) {
    const recorder = new ActivityRecorder({ workerId: worker.id, events: worker.events, transport, registry, logger, eventsMaxLen: config.events_max_len });
    closers.push(() => recorder.close());
  }
  if (config.metrics_port !== undefined) {
    // Loaded only when asked for: prom-client and its dependencies add about 5 MB to every worker's RSS.
    const { createMetrics, serveMetrics } = await import("../metrics/prometheus.ts");
    const metrics = createMetrics({
      events: worker.events,
      transport,
      registry,
      queues: config.queues,
      logger,
      load: () => {
        const info = worker.info();
        return { active: info.active, concurrency: info.concurrency };
      },
    });
    closers.push(async () => metrics.detach());
    try {
      const server = await serveMetrics(metrics.registry, config.metrics_port, config.metrics_host);
      out.metricsPort = server.port;
      closers.push(server.close);
      logger.info(`metrics: http://${config.metrics_host}:${server.port}/metrics`);
    } catch (err) {
      logger.error(`metrics endpoint not started: cannot listen on ${config.metrics_host}:${config.metrics_port} (${(err as Error).message}); pick another --metrics-port`);
    }
  }
  return out;
}

/**
 * Start a worker with its observers: what `qworker worker` and `qworker demo` both do. The observers are
 * attached before the worker consumes, so the tasks it takes at once (a backlog waiting for it) are
 * recorded and counted like the rest; if the worker then fails to start, they are closed again.
 */
export async function startObservedWorker(opts: Parameters<typeof startObservers>[0]): Promise<Observers> {
  const observers = await startObservers(opts);
  try {
    await opts.worker.start();
  } catch (err) {
    await observers.close();
    throw err;
  }
  return observers;
}
