/**
 * Redis Cluster (redis+cluster://) on a real three-node cluster: the transport contract (the same suite
 * the single server and the embedded broker pass), then a real `qworker worker` process draining tasks.
 * The key prefix gets a hash tag ({qw}:), so every script runs on the node that owns that one slot.
 */
import { afterAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { enqueueNumbered, numbered } from "../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../support/fault-outcomes.ts";
import { spawnWorker, waitUntil } from "../support/fault-worker.ts";
import { redisCliAvailable, startRedisCluster, type RedisClusterHandle } from "../support/redis-cluster.ts";
import { redisServerAvailable } from "../support/redis-server.ts";
import { runConformanceSuite } from "./conformance/suite.ts";

let cluster: Promise<RedisClusterHandle> | undefined;
const theCluster = (): Promise<RedisClusterHandle> => (cluster ??= startRedisCluster());

afterAll(async () => {
  if (cluster) await (await cluster).cleanup();
});

describe.skipIf(!redisServerAvailable() || !redisCliAvailable())("Redis Cluster", () => {
  runConformanceSuite("redis-cluster", async (settings) => {
    const transport = createRedisTransport((await theCluster()).url, { ...settings });
    return { transport, cleanup: () => transport.close() };
  });

  it("a qworker worker process drains tasks from the cluster; all keys share the prefix's hash slot", async () => {
    const { url, nodes } = await theCluster();
    const out = makeOutDir();
    const t = createRedisTransport(url);
    await t.connect();
    const w = spawnWorker({ broker: url, outDir: out.dir, concurrency: 10, queues: ["cluster"] });
    try {
      const ids = numbered("cl-", 300);
      await enqueueNumbered(t, ids, { queue: "cluster", ms: 1 });
      await waitUntil("every task to run", 30_000, () => new Set(recorded(out.dir)).size >= ids.length);
      const result = tally(out.dir, ids);
      expect(result.lost).toEqual([]);
      expect(result.extraRuns).toBe(0);
      await waitUntil("the queue to empty", 10_000, async () => {
        const [q] = await t.stats(["cluster"]);
        return q !== undefined && q.ready === 0 && q.active === 0;
      });
      // Every qworker key is on one node, under the hash-tagged prefix.
      const { Redis } = await import("ioredis");
      const perNode = await Promise.all(
        nodes.map(async (n) => {
          const c = new Redis({ host: n.host, port: n.port, lazyConnect: true });
          await c.connect();
          const keys = await c.keys("*qw*");
          c.disconnect();
          return keys;
        }),
      );
      const withKeys = perNode.filter((k) => k.length > 0);
      expect(withKeys).toHaveLength(1);
      expect(withKeys[0]!.every((k) => k.startsWith("{qw}:"))).toBe(true);
      w.term();
      expect(await w.exited).toBe(0);
    } finally {
      await w.kill9();
      await t.close();
      out.cleanup();
    }
  }, 90_000);
});
