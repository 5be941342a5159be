/**
 * S3: SIGTERM to a busy worker is a warm shutdown: it stops fetching, lets running tasks finish, exits 0
 * and leaves nothing leased. Past shutdown_timeout, or on a second signal (cold), unfinished tasks go
 * back to the front of their queue at once instead of waiting out their lease.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

let redis: RedisServerHandle;
let t: Transport;
const workers: WorkerProcess[] = [];
const dirs: (() => void)[] = [];

beforeAll(async () => {
  redis = await startRedisServer({ appendonly: true });
  t = createRedisTransport(redis.url);
  await t.connect();
});

afterAll(async () => {
  for (const w of workers) await w.kill9();
  await t?.close();
  await redis?.cleanup();
  for (const d of dirs) d();
});

function setup(queue: string, env: Record<string, string> = {}) {
  const out = makeOutDir();
  dirs.push(out.cleanup);
  const w = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 5, queues: [queue], env });
  workers.push(w);
  return { out, w };
}

const counts = async (queue: string) => (await t.stats([queue]))[0]!;

describe.skipIf(!redisServerAvailable())("S3: shutdown", () => {
  it("SIGTERM: running tasks finish, exit code 0, nothing left leased, the rest still queued", async () => {
    const queue = "s3warm";
    const ids = numbered("s3w-", 60);
    await enqueueNumbered(t, ids, { queue, ms: 400 });
    const { out, w } = setup(queue);
    await waitUntil("the worker to be busy", 30_000, async () => (await counts(queue)).active === 5 && recorded(out.dir).length >= 5);
    await w.ready();
    w.term();
    expect(await w.exited).toBe(0);
    const c = await counts(queue);
    expect(c.active).toBe(0);
    const done = recorded(out.dir);
    expect(done.length + c.ready).toBe(ids.length);
    expect(tally(out.dir, ids).extraRuns).toBe(0);
    expect(w.stderr()).not.toMatch(/handed back/);
  }, 60_000);

  it("past shutdown_timeout, unfinished tasks are handed back at once and the worker exits 0", async () => {
    const queue = "s3timeout";
    const ids = numbered("s3t-", 5);
    await enqueueNumbered(t, ids, { queue, ms: 20_000 });
    const { w } = setup(queue, { QWORKER_SHUTDOWN_TIMEOUT: "1" });
    await waitUntil("all five to be running", 30_000, async () => (await counts(queue)).active === 5);
    await w.ready();
    const termAt = Date.now();
    w.term();
    expect(await w.exited).toBe(0);
    expect(Date.now() - termAt).toBeLessThan(5000);
    // Back in ready, not waiting for the 30 s lease; and the clean hand-back did not count a delivery.
    expect(await counts(queue)).toMatchObject({ ready: 5, active: 0 });
    const again = await t.reserve({ queues: [queue], max: 5, leaseMs: 1000, workerId: "s3-check", waitMs: 0 });
    expect(again.map((r) => r.deliveries)).toEqual([1, 1, 1, 1, 1]);
    await t.release(again.map(({ id, token, queue: q }) => ({ id, token, queue: q })));
  }, 60_000);

  it("a second SIGTERM is cold: running tasks go back now and the worker exits 0", async () => {
    const queue = "s3cold";
    const ids = numbered("s3c-", 5);
    await enqueueNumbered(t, ids, { queue, ms: 20_000 });
    const { w } = setup(queue); // default shutdown_timeout: 30 s
    await waitUntil("all five to be running", 30_000, async () => (await counts(queue)).active === 5);
    await w.ready();
    const termAt = Date.now();
    w.term();
    await new Promise((r) => setTimeout(r, 300));
    w.term();
    expect(await w.exited).toBe(0);
    expect(Date.now() - termAt).toBeLessThan(5000);
    expect(await counts(queue)).toMatchObject({ ready: 5, active: 0 });
    expect(w.stderr()).toMatch(/cold shutdown/);
  }, 60_000);
});
