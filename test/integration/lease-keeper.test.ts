/**
 * The lease-keeper thread renews whatever the broker leased to the worker (no per-task messages), and the
 * worker learns from each renewal which of its leases another worker took over.
 */
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { configSchema } from "../../src/config/schema.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { taskContext } from "../../src/tasks/context.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { leaseKeeperFor } from "../../src/worker/lease-keeper.ts";
import { Worker } from "../../src/worker/worker.ts";
import { waitFor } from "../e2e/helpers.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

let redis: RedisServerHandle;
beforeAll(async () => {
  if (redisServerAvailable()) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.cleanup();
});

describe.skipIf(!redisServerAvailable())("lease keeper thread", () => {
  it("keeps a long task's lease alive, and aborts a run whose lease another worker recovered", async () => {
    const prefix = "lk1:";
    const started: string[] = [];
    const aborted: string[] = [];
    const registry = new TaskRegistry();
    const waits = defineTask("lk.waits", async () => {
      const ctx = taskContext();
      started.push(ctx.id);
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
      aborted.push(ctx.id);
      throw new Error("aborted");
    });
    registry.register("lk.waits", waits as never, "test");
    // A 3 s lease renewed every second; the first task outlives its lease several times over.
    const config = shortLeaseConfig(prefix);
    const { logger, logs } = capturedLogger();
    const transport = createRedisTransport(redis.url, { prefix });
    await transport.connect();
    const worker = new Worker({ transport, registry, config, logger, leaseKeeper: leaseKeeperFor(config, logger) });
    const other = createRedisTransport(redis.url, { prefix });
    await other.connect();
    const raw = new Redis(redis.url);
    try {
      await worker.start();
      await other.enqueue([
        { id: "keep-1", queue: "default", priority: 0, payload: message("keep-1") },
        { id: "lose-1", queue: "default", priority: 0, payload: message("lose-1") },
      ]);
      await waitFor("both tasks started", () => started.length === 2 || undefined, 5000);

      // Past the original lease: both still held (renewed by the thread) and never recovered.
      await new Promise((r) => setTimeout(r, 4000));
      await other.recover({ maxDeliveries: 5, heartbeatTtlMs: 10_000, deadMax: 100, deadTtlMs: 60_000 });
      const active = await other.listActive(100);
      expect(active.map((a) => a.id).sort()).toEqual(["keep-1", "lose-1"]);
      expect(active.every((a) => a.leaseUntil > Date.now())).toBe(true);

      // Another party takes "lose-1" over (here: hands it back; recovery would do the same to this worker).
      const token = await raw.hget(`${prefix}j:lose-1`, "t");
      expect(token).toBeTruthy();
      await other.release([{ id: "lose-1", token: token!, queue: "default" }]);
      const [taken] = await other.reserve({ queues: ["default"], max: 1, leaseMs: 60_000, workerId: "someone-else", waitMs: 0 });
      expect(taken?.id).toBe("lose-1");

      await waitFor("the recovered run aborted", () => aborted.includes("lose-1") || undefined, 5000);
      expect(aborted).toEqual(["lose-1"]);
      expect(logs.some((l) => l.includes("lose-1") && l.includes("lease lost"))).toBe(true);
      // The other worker's lease is untouched by this worker's failure.
      expect(await other.settle([{ id: "lose-1", token: taken!.token, queue: "default", outcome: "SUCCESS", resultTtlMs: 1000 }])).toEqual(["lose-1"]);
    } finally {
      await worker.stop({ cold: true });
      await transport.close();
      await other.close();
      raw.disconnect();
    }
  }, 30_000);
});

/** A 3 s lease, so the keeper renews every second. */
function shortLeaseConfig(prefix: string) {
  return { ...configSchema.parse({ broker_url: redis.url, redis_prefix: prefix, concurrency: 2, lease_timeout: 3, heartbeat_interval: 0.5 }), broker_url: redis.url };
}

/** An info logger whose messages land in `logs`. */
function capturedLogger() {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split("\n")) if (line) logs.push((JSON.parse(line) as { msg: string }).msg);
      cb();
    },
  });
  return { logger: pino({ level: "info" }, sink), logs };
}

function message(id: string, task = "lk.waits"): string {
  return JSON.stringify({ v: 1, id, task, args: [], kwargs: {}, queue: "default", priority: 0, retries: 0, sentAt: Date.now() });
}

describe.skipIf(!redisServerAvailable())("a lost lease in the log", () => {
  it("is logged once per run, though the run ignores its signal through several more renewals", async () => {
    const prefix = "lk3:";
    const started: string[] = [];
    const finished: string[] = [];
    const registry = new TaskRegistry();
    // Ignores its abort signal, as a handler that never checks it does: it outlives the loss by ~4 renewals.
    const stubborn = defineTask("lk.stubborn", async () => {
      const id = taskContext().id;
      started.push(id);
      await new Promise((r) => setTimeout(r, 6000));
      finished.push(id);
    });
    registry.register("lk.stubborn", stubborn as never, "test");
    // Both slots busy and no prefetch, so the task handed back below is not reserved again by this worker.
    const config = { ...shortLeaseConfig(prefix), prefetch: 0 };
    const { logger, logs } = capturedLogger();
    const transport = createRedisTransport(redis.url, { prefix });
    await transport.connect();
    const worker = new Worker({ transport, registry, config, logger, leaseKeeper: leaseKeeperFor(config, logger) });
    const other = createRedisTransport(redis.url, { prefix });
    await other.connect();
    const raw = new Redis(redis.url);
    try {
      await worker.start();
      await other.enqueue(["stubborn-1", "stubborn-2"].map((id) => ({ id, queue: "default", priority: 0, payload: message(id, "lk.stubborn") })));
      await waitFor("both tasks started", () => started.length === 2 || undefined, 5000);
      const token = await raw.hget(`${prefix}j:stubborn-1`, "t");
      await other.release([{ id: "stubborn-1", token: token!, queue: "default" }]);
      const [taken] = await other.reserve({ queues: ["default"], max: 1, leaseMs: 60_000, workerId: "someone-else", waitMs: 0 });
      expect(taken?.id).toBe("stubborn-1");

      await waitFor("the stubborn run to return", () => finished.includes("stubborn-1") || undefined, 10_000);
      expect(logs.filter((l) => l.includes("stubborn-1") && l.includes("lease lost"))).toHaveLength(1);
    } finally {
      await worker.stop({ cold: true });
      await transport.close();
      await other.close();
      raw.disconnect();
    }
  }, 30_000);
});

describe.skipIf(!redisServerAvailable())("orphaned leases", () => {
  it("hands back and runs a task the broker leased to this worker without its hearing of it", async () => {
    // What a Redis restart can leave behind: reserve.lua ran, its reply never reached the worker. Here the
    // lease is taken in the worker's name before it starts; its keeper renews every lease in its name.
    const prefix = "lk2:";
    const workerId = "orphan-test-worker";
    const ran: string[] = [];
    const registry = new TaskRegistry();
    const records = defineTask("lk.records", () => void ran.push(taskContext().id));
    registry.register("lk.records", records as never, "test");
    const config = shortLeaseConfig(prefix);
    const { logger, logs } = capturedLogger();
    const other = createRedisTransport(redis.url, { prefix });
    await other.connect();
    const transport = createRedisTransport(redis.url, { prefix });
    await transport.connect();
    const worker = new Worker({ id: workerId, transport, registry, config, logger, leaseKeeper: leaseKeeperFor(config, logger) });
    try {
      await other.enqueue(["orphan-1", "elsewhere-1"].map((id) => ({ id, queue: "default", priority: 0, payload: message(id, "lk.records") })));
      const [orphan] = await other.reserve({ queues: ["default"], max: 1, leaseMs: 60_000, workerId, waitMs: 0 });
      const [elsewhere] = await other.reserve({ queues: ["default"], max: 1, leaseMs: 60_000, workerId: "another-worker", waitMs: 0 });
      expect([orphan?.id, elsewhere?.id]).toEqual(["orphan-1", "elsewhere-1"]);
      // Only leases in the worker's own name are handed back.
      expect(await other.releaseOrphans!(workerId, ["elsewhere-1"])).toBe(0);

      await worker.start();
      // Renewals every second: listed unheld twice, then handed back and run, long before its 60 s lease ends.
      await waitFor("the orphaned task to run", () => ran.includes("orphan-1") || undefined, 8000);
      expect(ran).toEqual(["orphan-1"]);
      expect(logs.some((l) => l.includes("handed back 1 task(s) the broker had leased to this worker"))).toBe(true);
      await waitFor("the run settled", async () => ((await other.stats(["default"]))[0]!.active === 1 ? true : undefined), 5000);
      // The other worker's lease is untouched: still active, still its own.
      expect(await other.settle([{ id: "elsewhere-1", token: elsewhere!.token, queue: "default", outcome: "SUCCESS", resultTtlMs: 1000 }])).toEqual(["elsewhere-1"]);
    } finally {
      await worker.stop({ cold: true });
      await transport.close();
      await other.close();
    }
  }, 30_000);
});
