/**
 * S7: a Redis Cluster failover under a running worker. The cluster has three masters, each with a replica;
 * mid-run the replica of the master that holds qworker's slot takes over with CLUSTER FAILOVER (what an
 * operator runs for maintenance). That kind is coordinated: the master stops taking writes until its
 * replica has them all, so nothing the worker wrote is lost, and a command that reached the old master
 * after the pause is answered with MOVED and redone on the new one. So: no task lost, none run twice, and
 * the worker never exits.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createTransport } from "../../../src/broker/factory.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { finishAfterFailover } from "../../support/after-failover.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil } from "../../support/fault-worker.ts";
import { redisCliAvailable, startRedisCluster } from "../../support/redis-cluster.ts";
import { redisServerAvailable } from "../../support/redis-server.ts";

const N = Number(process.env.QWORKER_FAULT_N ?? 1500);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!redisServerAvailable() || !redisCliAvailable())("S7: Redis Cluster failover under a running worker", () => {
  it("the replica of qworker's master takes over mid-run: nothing lost, nothing run twice", async () => {
    const out = makeOutDir();
    cleanups.push(out.cleanup);
    const c = await startRedisCluster({ replicas: 1 });
    cleanups.push(() => c.cleanup());
    const t: Transport = await createTransport(c.url);
    await t.connect();
    cleanups.push(() => t.close());

    const ids = numbered("s7-", N);
    await enqueueNumbered(t, ids, { ms: 20 });
    const w = spawnWorker({ broker: c.url, outDir: out.dir, concurrency: 10 });
    cleanups.push(() => w.kill9());
    await waitUntil("30 % of the tasks to finish", 60_000, () => recorded(out.dir).length >= N * 0.3);

    const slot = await c.keySlot("{qw}:queues");
    const { from, to } = await c.failover(slot);
    expect(await c.masterOf(slot)).toBe(to);
    expect(to).not.toBe(from);
    const result = await finishAfterFailover({ t, w, outDir: out.dir, ids, latePrefix: "s7-late-" });
    if (process.env.FAULT_DEBUG) console.log({ from, to, extraRuns: result.extraRuns }, w.stderr());
    expect([...result.duplicates.keys()]).toEqual([]);
  }, 180_000);
});
