// Prefetch (reserving beyond free slots, for speed) must not change what a worker promises: never more
// tasks running than `concurrency`, every task run once, and prefetched tasks handed back on shutdown.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { configSchema } from "../../src/config/schema.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

let redis: RedisServerHandle;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.cleanup();
});

async function setup(prefix: string, holdMs: number, overrides: Record<string, unknown>) {
  let now = 0;
  let peak = 0;
  const ran: number[] = [];
  const registry = new TaskRegistry();
  const task = defineTask("t.hold", async (i: number) => {
    peak = Math.max(peak, ++now);
    ran.push(i);
    await new Promise((r) => setTimeout(r, holdMs));
    now--;
  });
  registry.register("t.hold", task as never, "test");
  const config = configSchema.parse({ broker_url: redis.url, redis_prefix: prefix, loglevel: "error", ...overrides });
  const transport = createRedisTransport(redis.url, { prefix });
  await transport.connect();
  const worker = new Worker({ transport, registry, config, logger: pino({ level: "silent" }) });
  const send = (n: number) =>
    transport.enqueue(
      Array.from({ length: n }, (_, i) => buildEnqueueItem("t.hold", [i], { ignoreResult: true }, { queue: "default", maxPayloadBytes: 1 << 20 })),
    );
  return { worker, transport, send, ran, peak: () => peak };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("Worker prefetch", () => {
  it("holds prefetched tasks leased but never runs more than concurrency; each task runs once", async () => {
    const { worker, transport, send, ran, peak } = await setup("pf1:", 40, { concurrency: 2, prefetch: 3 });
    await send(12);
    await worker.start();
    // 2 running + 3 prefetched are leased (active in the broker) at once.
    await until(async () => (await transport.stats(["default"]))[0]?.active === 5);
    await until(() => ran.length === 12);
    expect(peak()).toBe(2);
    expect([...ran].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    await worker.stop();
    expect((await transport.stats(["default"]))[0]).toMatchObject({ ready: 0, active: 0, dead: 0 });
    await transport.close();
  });

  it("hands prefetched tasks back to the queue on shutdown", async () => {
    const { worker, transport, send, ran } = await setup("pf2:", 300, { concurrency: 1, prefetch: 4, shutdown_timeout: 5 });
    await send(6);
    await worker.start();
    await until(async () => (await transport.stats(["default"]))[0]?.active === 5);
    await worker.stop(); // warm: the running task finishes, the four prefetched ones go back unstarted
    expect(ran).toHaveLength(1);
    expect((await transport.stats(["default"]))[0]).toMatchObject({ ready: 5, active: 0 });
    await transport.close();
  });
});
