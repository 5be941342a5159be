import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { QueueCounts, Transport } from "../broker/transport.ts";
import type { TaskMessage } from "../protocol/message.ts";
import type { TaskRegistry } from "../tasks/registry.ts";
import type { WorkerEvents } from "../worker/events.ts";
import { ms } from "../worker/format.ts";

export interface MetricsOptions {
  events: WorkerEvents;
  transport: Transport;
  registry: TaskRegistry;
  /** Queues this worker consumes: their depths are reported as gauges. */
  queues: string[];
  /** Current load for the worker gauges. */
  load: () => { active: number; concurrency: number };
  /** Says when the queue gauges go missing from the page and when they are back (once each per outage). */
  logger: Pick<Logger, "warn">;
}

const RUNTIME_BUCKETS = [0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120, 600];
const WAIT_BUCKETS = [0.001, 0.01, 0.05, 0.25, 1, 5, 30, 120, 600, 3600];
/** Well under Prometheus's default scrape timeout (10 s). */
const QUEUE_STATS_TIMEOUT_MS = 2000;

/**
 * Prometheus metrics for one worker, fed from its lifecycle events (no broker calls per task). Queue depth
 * gauges are read from the broker at scrape time, so they cost one stats() call per scrape.
 */
export function createMetrics(opts: MetricsOptions): { registry: Registry; detach: () => void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "qworker_" });
  const labels = ["task", "queue"] as const;
  // One stats() call at a time: scrapes during an outage share the call still waiting instead of piling up.
  let pending: Promise<QueueCounts[] | Error> | undefined;
  const read = async (): Promise<QueueCounts[] | Error> => {
    pending ??= opts.transport.stats(opts.queues).then(
      (c) => c,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
    const call = pending;
    void call.finally(() => {
      if (pending === call) pending = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Error>((resolve) => (timer = setTimeout(() => resolve(new Error(`no answer within ${ms(QUEUE_STATS_TIMEOUT_MS)}`)), QUEUE_STATS_TIMEOUT_MS)));
    try {
      return await Promise.race([call, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  // A page without the gauges is otherwise silent: the operator sees a gap in the graphs and no reason for
  // it. Said once when they go missing and once when they are back, as the worker logs a broker outage,
  // not on every scrape (Prometheus scrapes every 15 s or so, for as long as the outage lasts).
  let missingSince: number | undefined;
  let missedScrapes = 0;
  const queueCounts = async (): Promise<QueueCounts[] | null> => {
    const got = await read();
    if (got instanceof Error) {
      missedScrapes++;
      if (missingSince === undefined) {
        missingSince = Date.now();
        opts.logger.warn(`metrics: queue depth gauges left out of /metrics: reading them from the broker failed (${got.message}); they are back once it answers`);
      }
      return null;
    }
    if (missingSince !== undefined) {
      opts.logger.warn(`metrics: queue depth gauges back on /metrics after ${ms(Date.now() - missingSince)} (${missedScrapes} scrape(s) went without them)`);
      missingSince = undefined;
      missedScrapes = 0;
    }
    return got;
  };
  const received = new Counter({ name: "qworker_tasks_received_total", help: "Tasks received by this worker", labelNames: labels, registers: [registry] });
  const succeeded = new Counter({ name: "qworker_tasks_succeeded_total", help: "Tasks that succeeded", labelNames: labels, registers: [registry] });
  const failed = new Counter({ name: "qworker_tasks_failed_total", help: "Tasks that failed for good (retries exhausted or not retryable)", labelNames: labels, registers: [registry] });
  const retried = new Counter({ name: "qworker_tasks_retried_total", help: "Retries scheduled", labelNames: labels, registers: [registry] });
  const runtime = new Histogram({ name: "qworker_task_runtime_seconds", help: "Handler run time", labelNames: labels, buckets: RUNTIME_BUCKETS, registers: [registry] });
  const wait = new Histogram({ name: "qworker_task_queue_wait_seconds", help: "Time from due (sent, eta, or the end of a retry's backoff) to received", labelNames: labels, buckets: WAIT_BUCKETS, registers: [registry] });
  new Gauge({
    name: "qworker_worker_active_tasks",
    help: "Tasks running on this worker",
    registers: [registry],
    collect() {
      this.set(opts.load().active);
    },
  });
  new Gauge({
    name: "qworker_worker_concurrency",
    help: "Slots of this worker",
    registers: [registry],
    collect() {
      this.set(opts.load().concurrency);
    },
  });
  new Gauge({
    name: "qworker_queue_tasks",
    help: "Tasks per queue and state (ready, delayed, active, dead), read from the broker at scrape time",
    labelNames: ["queue", "state"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      // Without an answer in time (the broker down or frozen) the page goes out without these gauges: a
      // scrape that waited for them, or failed with them, would lose every other metric for the outage.
      const counts = await queueCounts();
      for (const c of counts ?? []) {
        for (const state of ["ready", "delayed", "active", "dead"] as const) this.set({ queue: c.name, state }, c[state]);
      }
    },
  });

  // Unregistered names come from senders; folding them keeps label cardinality bounded by the registry.
  const l = (msg: TaskMessage) => ({ task: opts.registry.get(msg.task) ? msg.task : "<unregistered>", queue: msg.queue });
  const on = {
    received: (msg: TaskMessage) => {
      received.inc(l(msg));
      wait.observe(l(msg), Math.max(0, Date.now() - Math.max(msg.sentAt, msg.eta ?? 0)) / 1000);
    },
    succeeded: (msg: TaskMessage, _v: unknown, ms: number) => {
      succeeded.inc(l(msg));
      runtime.observe(l(msg), ms / 1000);
    },
    failed: (msg: TaskMessage, _e: Error, ms: number, final: boolean) => {
      runtime.observe(l(msg), ms / 1000);
      if (final) failed.inc(l(msg));
    },
    retry: (msg: TaskMessage) => retried.inc(l(msg)),
  };
  const ev = opts.events;
  ev.on("task:received", on.received);
  ev.on("task:succeeded", on.succeeded);
  ev.on("task:failed", on.failed);
  ev.on("task:retry", on.retry);
  return {
    registry,
    detach() {
      ev.off("task:received", on.received);
      ev.off("task:succeeded", on.succeeded);
      ev.off("task:failed", on.failed);
      ev.off("task:retry", on.retry);
    },
  };
}

/** Serve GET /metrics on `host` (all interfaces by default) at `port` (0: any free port). */
export async function serveMetrics(registry: Registry, port: number, host = "0.0.0.0"): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url !== "/metrics" && !req.url?.startsWith("/metrics?"))) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
      (err: Error) => res.writeHead(503, { "content-type": "text/plain" }).end(`metrics unavailable: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
