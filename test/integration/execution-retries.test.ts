import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/client/client.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { DEMO_TASKS, ExecEnv, waitUntil, type WorkerProc } from "./execution-harness.ts";

/**
 * Done-when: demo.risky (max 3, countdown 1) failing every time runs exactly 4 times, 1 s apart, then is
 * failed and dead-lettered. The demo task keeps the default backoff and jitter, which would make the gaps
 * 0.5-1, 1-2 and 2-4 s; "1 s apart" means a fixed countdown, so this worker's config turns both off.
 */
describe.skipIf(!redisServerAvailable())("retries through the real CLI", () => {
  let redis: RedisServerHandle;
  let env: ExecEnv;
  let worker: WorkerProc | undefined;
  let client: Client;

  beforeAll(async () => {
    redis = await startRedisServer();
    env = new ExecEnv(redis.url, { tasks_dir: DEMO_TASKS, retry: { backoff: false, jitter: false } });
    client = await createClient({ brokerUrl: redis.url });
  });

  afterAll(async () => {
    await worker?.stop();
    await client?.close();
    await redis?.cleanup();
    env?.cleanup();
  });

  it("demo.risky failing every time runs 4 times about 1 s apart, then FAILURE and dead-letter", { timeout: 90_000 }, async () => {
    worker = env.worker(["--concurrency", "2"], { QWORKER_DEMO_FAIL_RATE: "1" });
    await worker.waitForLog(/^tasks \(/, 60_000);
    const id = await env.send("demo.risky", ["--args", "[7]"]);
    const ref = client.ref(id);
    await waitUntil(async () => (await ref.state())?.state === "FAILURE", 45_000, "demo.risky to fail for good");

    const mine = worker.logs().filter((l) => l.msg.includes(`[${id}]`));
    // Each run ends in a "retry" line or the final "failed" line; the task fails at once, so these are
    // the run times too.
    const ends = mine.filter((l) => / retry \d\/3 in | failed after /.test(l.msg)).map((l) => l.time);
    expect(ends, worker.stderr()).toHaveLength(4);
    for (let i = 1; i < ends.length; i++) {
      const gap = ends[i]! - ends[i - 1]!;
      expect(gap).toBeGreaterThanOrEqual(950);
      expect(gap).toBeLessThan(2000);
    }
    const retries = mine.filter((l) => /retry \d\/3 in 1\.0 s: flaky dependency failed on input 7/.test(l.msg)).map((l) => l.msg);
    expect(retries.map((m) => /retry (\d)\/3/.exec(m)![1])).toEqual(["1", "2", "3"]);
    expect(mine.some((l) => /failed after 3 retries: Error: flaky dependency failed on input 7/.test(l.msg))).toBe(true);

    const result = await ref.state();
    expect(result).toMatchObject({ state: "FAILURE", retries: 3 });
    const dead = await client.transport.listDead();
    expect(dead.map((d) => d.id)).toContain(id);
    expect(dead.find((d) => d.id === id)!.reason).toMatch(/failed after 3 retries/);
  });
});
