/**
 * S8: redis-server is frozen (SIGSTOP: a swapping or stalled host, a paused VM) for longer than the
 * heartbeat TTL under two running workers, then resumes. Both workers are alive throughout, so no task may
 * run twice and none may be lost. Before recovery learned to notice the gap in its own sweeps, the first
 * sweep after the freeze found the other worker's heartbeat as old as the freeze and handed its leased
 * tasks to the sweeping worker, which ran them again.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer } from "../../support/redis-server.ts";

const N = Number(process.env.QWORKER_FAULT_N ?? 1500);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!redisServerAvailable())("S8: redis-server frozen under two running workers", () => {
  it("frozen 5 s with a 3 s heartbeat TTL: nothing lost, nothing run twice", async () => {
    const out = makeOutDir();
    cleanups.push(out.cleanup);
    const redis = await startRedisServer();
    cleanups.push(() => redis.cleanup());
    const t: Transport = createRedisTransport(redis.url);
    await t.connect();
    cleanups.push(() => t.close());

    const ids = numbered("s8-", N);
    await enqueueNumbered(t, ids, { ms: 20 });
    const env = { QWORKER_HEARTBEAT_TTL: "3", QWORKER_HEARTBEAT_INTERVAL: "1" };
    const workers = [0, 1].map(() => spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 10, env }));
    for (const w of workers) cleanups.push(() => w.kill9());
    await waitUntil("20 % of the tasks to finish", 60_000, () => recorded(out.dir).length >= N * 0.2);

    const pid = redis.pid!;
    process.kill(pid, "SIGSTOP");
    try {
      await new Promise((r) => setTimeout(r, 5000));
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await waitUntil("every task to finish", 90_000, () => new Set(recorded(out.dir)).size >= N);
    for (const w of workers) w.term();
    for (const w of workers) expect(await w.exited).toBe(0);
    const result = tally(out.dir, ids);
    expect(result.lost).toEqual([]);
    expect([...result.duplicates.keys()]).toEqual([]);
    const msgs = workers.flatMap((w) => w.logs().map((l) => l.msg ?? ""));
    expect(msgs.filter((m) => /recovered \d+ task\(s\) from expired leases or dead workers/.test(m))).toEqual([]);
  }, 150_000);
});
