/**
 * /metrics while the broker does not answer (a frozen Redis, SIGSTOP): the page is still served, with the
 * task counters and process metrics, and only the queue-depth gauges (read from the broker at scrape time)
 * are missing; they come back with the broker. A scrape that hung instead lost every metric of the worker
 * for the length of the outage, the time they are needed most. The worker's log says so once when the
 * gauges go missing and once when they are back, not on every scrape.
 */
import type { Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createMetrics, serveMetrics } from "../../src/metrics/prometheus.ts";
import type { TaskMessage } from "../../src/protocol/message.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { WorkerEvents } from "../../src/worker/events.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

describe.skipIf(!redisServerAvailable())("metrics with the broker frozen", () => {
  let redis: RedisServerHandle;
  let transport: Transport;
  let frozen: number | undefined;

  beforeAll(async () => {
    redis = await startRedisServer();
    transport = createRedisTransport(redis.url);
    await transport.connect();
  });
  afterAll(async () => {
    if (frozen !== undefined) process.kill(frozen, "SIGCONT");
    await transport?.close();
    await redis?.cleanup();
  });

  it("serves the page without the queue gauges, within a scrape timeout, and reads them again after", { timeout: 30_000 }, async () => {
    const events = new WorkerEvents();
    const warnings: string[] = [];
    const logger = { warn: (line: string) => void warnings.push(line) } as unknown as Pick<Logger, "warn">;
    const metrics = createMetrics({ events, transport, registry: new TaskRegistry(), queues: ["default"], load: () => ({ active: 0, concurrency: 1 }), logger });
    const server = await serveMetrics(metrics.registry, 0, "127.0.0.1");
    const url = `http://127.0.0.1:${server.port}/metrics`;
    try {
      const msg = { id: "m1", task: "x.y", queue: "default", args: [], kwargs: {}, retries: 0, sentAt: Date.now() } as unknown as TaskMessage;
      events.emit("task:received", msg, 1, Date.now());
      events.emit("task:succeeded", msg, 1, 5);
      expect(await (await fetch(url)).text()).toMatch(/^qworker_queue_tasks\{queue="default",state="ready"\} 0$/m);

      frozen = redis.pid!;
      process.kill(frozen, "SIGSTOP");
      const started = Date.now();
      const res = await fetch(url, { signal: AbortSignal.timeout(8_000) });
      const page = await res.text();
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(page).toMatch(/^qworker_tasks_succeeded_total\{task="<unregistered>",queue="default"\} 1$/m);
      expect(page).toMatch(/^qworker_process_cpu_seconds_total /m);
      expect(page).not.toMatch(/^qworker_queue_tasks\{/m);
      expect(warnings).toEqual([expect.stringMatching(/^metrics: queue depth gauges left out of \/metrics: reading them from the broker failed \(no answer within 2\.00 s\); they are back once it answers$/)]);
      // A second scrape in the same outage: the page the same, the log quiet (it was silent on every one).
      expect(await (await fetch(url, { signal: AbortSignal.timeout(8_000) })).text()).not.toMatch(/^qworker_queue_tasks\{/m);
      expect(warnings).toHaveLength(1);

      process.kill(frozen, "SIGCONT");
      frozen = undefined;
      await expect.poll(async () => (await (await fetch(url)).text()).match(/^qworker_queue_tasks\{queue="default",state="ready"\} 0$/m) !== null, { timeout: 10_000 }).toBe(true);
      expect(warnings).toHaveLength(2);
      expect(warnings[1]).toMatch(/^metrics: queue depth gauges back on \/metrics after \d+\.\d+ s \(\d+ scrape\(s\) went without them\)$/);
      await fetch(url);
      expect(warnings).toHaveLength(2);
    } finally {
      metrics.detach();
      await server.close();
    }
  });
});
