/**
 * S1: a worker is SIGKILLed at about 30 % of a run; a fresh worker takes over. With DEFAULT lease and
 * heartbeat settings, the killed worker's leased tasks must be run again within 15 s of the kill (its
 * heartbeat lapses after heartbeat_ttl = 10 s), nothing may be lost, and the only duplicates allowed are
 * tasks that were leased to the killed worker (finished but not yet settled when it died).
 * N defaults to 1500 here; `npm run test:faults:full` runs the 5000.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

const N = Number(process.env.QWORKER_FAULT_N ?? 1500);
const out = makeOutDir();
let redis: RedisServerHandle;
let t: Transport;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redis = await startRedisServer({ appendonly: true });
  t = createRedisTransport(redis.url);
  await t.connect();
});

afterAll(async () => {
  for (const w of workers) await w.kill9();
  await t?.close();
  await redis?.cleanup();
  out.cleanup();
});

describe.skipIf(!redisServerAvailable())("S1: worker killed with SIGKILL mid-run", () => {
  it(`loses none of ${N} tasks and recovers the dead worker's leases within 15 s with default settings`, async () => {
    const ids = numbered("s1-", N);
    await enqueueNumbered(t, ids, { ms: 5 });

    const a = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 10 });
    workers.push(a);
    await waitUntil("30 % of the tasks to finish", 60_000, () => recorded(out.dir).length >= N * 0.3);
    await a.kill9();
    const killedAt = Date.now();
    const [atKill] = await t.stats(["default"]);
    const leasedByDead = (await t.listActive(1000)).map((x) => x.id);
    expect(atKill!.active).toBe(leasedByDead.length);
    expect(leasedByDead.length).toBeGreaterThan(0);
    // Leased = running (concurrency 10) + finished but not yet settled + automatic prefetch for short tasks
    // (at most max(concurrency, 64), src/worker/prefetch.ts); duplicates are bounded by this set below.
    expect(leasedByDead.length).toBeLessThanOrEqual(10 + 64);

    const b = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 10 });
    workers.push(b);
    const deadIds = leasedByDead.map((id) => id.replace(/^t-/, ""));
    // Within the heartbeat TTL (10 s) plus a recovery sweep and the time to run them; 15 s is the target.
    await waitUntil("the dead worker's tasks to run again", 20_000, () => {
      const seen = new Set(recorded(out.dir));
      return deadIds.every((id) => seen.has(id));
    });
    const recoveredIn = Date.now() - killedAt;
    await waitUntil("every task to finish", 60_000, () => new Set(recorded(out.dir)).size >= N);

    b.term();
    expect(await b.exited).toBe(0);
    const result = tally(out.dir, ids);
    expect(result.lost).toEqual([]);
    expect(result.unexpected).toEqual([]);
    // Only tasks the killed worker held can have run twice.
    for (const id of result.duplicates.keys()) expect(deadIds).toContain(id);
    expect(result.extraRuns).toBeLessThanOrEqual(leasedByDead.length);
    expect(recoveredIn).toBeLessThanOrEqual(15_000);
    expect(await t.stats(["default"])).toEqual([{ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 }]);
  }, 120_000);
});
