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
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../../support/fault-outcomes.ts";
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
    const back = recorded(out.dir).length;
    await waitUntil("the worker to consume after the failover", 20_000, () => recorded(out.dir).length >= back + 20);
    await waitUntil("every task to finish", 90_000, () => new Set(recorded(out.dir)).size >= N);
    expect(w.proc.exitCode).toBeNull();

    const late = numbered("s7-late-", 5);
    await enqueueNumbered(t, late, { ms: 1 });
    await waitUntil("tasks sent after the failover to run", 20_000, () => late.every((id) => recorded(out.dir).includes(id)));
    await waitUntil("the queue to empty", 30_000, async () => {
      const [q] = await t.stats(["default"]);
      return q !== undefined && q.ready === 0 && q.active === 0 && q.delayed === 0;
    });

    w.term();
    expect(await w.exited).toBe(0);
    const result = tally(out.dir, [...ids, ...late]);
    if (process.env.FAULT_DEBUG) console.log({ from, to, extraRuns: result.extraRuns }, w.stderr());
    expect(result.lost).toEqual([]);
    expect(result.unexpected).toEqual([]);
    expect([...result.duplicates.keys()]).toEqual([]);
  }, 180_000);
});
