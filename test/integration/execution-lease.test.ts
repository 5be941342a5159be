import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/client/client.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { EXEC_TASKS, ExecEnv, waitUntil, type WorkerProc } from "./execution-harness.ts";

/**
 * Done-when: in the async pool, a CPU-bound task blocking the event loop longer than the lease timeout
 * causes no second delivery. Lease 2 s and heartbeat TTL 2 s, task blocks 6 s, and a second worker runs
 * the recovery sweep every second: without the lease keeper thread the task would be recovered and run
 * again by the other worker.
 */
describe.skipIf(!redisServerAvailable())("lease renewal off the event loop", () => {
  let redis: RedisServerHandle;
  let env: ExecEnv;
  let workers: WorkerProc[] = [];
  let client: Client;

  beforeAll(async () => {
    redis = await startRedisServer();
    env = new ExecEnv(redis.url, { tasks_dir: EXEC_TASKS, concurrency: 1, lease_timeout: 2, heartbeat_interval: 0.5, heartbeat_ttl: 2 });
    client = await createClient({ brokerUrl: redis.url });
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await client?.close();
    await redis?.cleanup();
    env?.cleanup();
  });

  it("a task blocking the loop 6 s with a 2 s lease is delivered once", { timeout: 120_000 }, async () => {
    workers = [env.worker(), env.worker()];
    await Promise.all(workers.map((w) => w.waitForLog(/^tasks \(/, 60_000)));
    const ref = await client.send("exec.cpu", [6000]);
    await waitUntil(async () => (await ref.state())?.state === "SUCCESS", 60_000, "the CPU-bound task to finish");
    // Give the other worker's recovery sweep time to act on anything it could have found.
    await new Promise((r) => setTimeout(r, 1500));
    const starts = env.runs().filter((r) => r.id === ref.id && r.phase === "start");
    expect(starts).toHaveLength(1);
    for (const w of workers) expect(w.stderr()).not.toMatch(/recovered \d+ task|lease lost/);
  });

  // Celery messages are leased in the worker's own lease structures (celery_claim.lua), on the Redis that
  // Celery uses: the keeper renews them there, whether that is the worker's broker or another server.
  it.each([
    ["the worker's own Redis", false],
    ["a Redis of its own", true],
  ])("the same holds for a task taken from a Celery (kombu) queue on %s", { timeout: 120_000 }, async (_where, separate) => {
    const celeryRedis = separate ? await startRedisServer() : redis;
    const celery = { queues: ["celery"], poll_interval: 0.05, ...(separate ? { broker_url: celeryRedis.url } : {}) };
    const celeryEnv = new ExecEnv(redis.url, { tasks_dir: EXEC_TASKS, concurrency: 1, lease_timeout: 2, heartbeat_interval: 0.5, heartbeat_ttl: 2, celery });
    const pair = [celeryEnv.worker(), celeryEnv.worker()];
    try {
      await Promise.all(pair.map((w) => w.waitForLog(/^tasks \(/, 60_000)));
      const id = await celeryEnv.send("exec.cpu", ["--args", "[6000]", "--celery"]);
      await waitUntil(async () => celeryEnv.runs().some((r) => r.id === id && r.phase === "end"), 60_000, "the CPU-bound Celery task to finish");
      await new Promise((r) => setTimeout(r, 3000));
      expect(celeryEnv.runs().filter((r) => r.id === id && r.phase === "start")).toHaveLength(1);
      for (const w of pair) expect(w.stderr()).not.toMatch(/recovered \d+ task|lease lost/);
    } finally {
      await Promise.all(pair.map((w) => w.stop()));
      celeryEnv.cleanup();
      if (separate) await celeryRedis.cleanup();
    }
  });
});
