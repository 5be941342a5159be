import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/client/client.ts";
import type { TaskRef } from "../../src/client/types.ts";
import { rateLimitInterval } from "../../src/tasks/rate-limit-spec.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { EXEC_TASKS, ExecEnv, waitUntil, type WorkerProc } from "./execution-harness.ts";

describe("rateLimitInterval", () => {
  it("reads Celery's syntax", () => {
    expect(rateLimitInterval("10/s")).toBe(100);
    expect(rateLimitInterval("100/m")).toBe(600);
    expect(rateLimitInterval("2/h")).toBe(1_800_000);
    expect(rateLimitInterval("4")).toBe(250);
    expect(rateLimitInterval("0/s")).toBeUndefined();
    expect(rateLimitInterval("ten/s")).toBeUndefined();
    expect(rateLimitInterval("10/d")).toBeUndefined();
  });
});

/** Done-when: rate_limit "10/s" with two workers: 50 tasks take at least about 5 s (one slot per 100 ms, globally). */
describe.skipIf(!redisServerAvailable())("global rate limit through the real CLI", () => {
  let redis: RedisServerHandle;
  let env: ExecEnv;
  let workers: WorkerProc[] = [];
  let client: Client;

  beforeAll(async () => {
    redis = await startRedisServer();
    env = new ExecEnv(redis.url, { tasks_dir: EXEC_TASKS, concurrency: 5 });
    client = await createClient({ brokerUrl: redis.url });
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await client?.close();
    await redis?.cleanup();
    env?.cleanup();
  });

  it("50 tasks at 10/s across two workers take about 5 s, never more than ~10 in any second", { timeout: 120_000 }, async () => {
    workers = [env.worker(), env.worker()];
    await Promise.all(workers.map((w) => w.waitForLog(/^tasks \(/, 60_000)));
    const refs: TaskRef[] = [];
    for (let i = 0; i < 50; i++) refs.push(await client.send("exec.limited"));
    await waitUntil(
      async () => (await Promise.all(refs.map((r) => r.state()))).every((s) => s?.state === "SUCCESS"),
      30_000,
      "all 50 rate-limited tasks to succeed",
    );
    const runs = env.runs().filter((r) => r.task === "exec.limited").sort((a, b) => a.t - b.t);
    expect(runs).toHaveLength(50);
    const span = runs.at(-1)!.t - runs[0]!.t;
    expect(span).toBeGreaterThanOrEqual(4500);
    // Both workers ran some: the limit is shared, not per worker.
    expect(new Set(runs.map((r) => r.pid)).size).toBe(2);
    // Any one-second window holds at most 10 slots (+1 for a slot admitted late next to an on-time one).
    for (let i = 0; i < runs.length; i++) {
      const inWindow = runs.filter((r) => r.t >= runs[i]!.t && r.t < runs[i]!.t + 1000).length;
      expect(inWindow).toBeLessThanOrEqual(11);
    }
    const delayed = workers.flatMap((w) => w.logs()).filter((l) => /rate-limited \(10\/s\): runs in/.test(l.msg));
    expect(delayed.length).toBeGreaterThan(0);
    const inspect = await env.cli(["inspect", "--json"]);
    const counted = (JSON.parse(inspect.stdout) as { workers: { counts?: { rateLimited?: number } }[] }).workers.reduce(
      (n, w) => n + (w.counts?.rateLimited ?? 0),
      0,
    );
    expect(counted).toBeGreaterThan(0);
  });
});
