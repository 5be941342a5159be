/**
 * enqueue_min_replicas against a real master, replica and sentinel: a send returns only once the replica
 * has the task (Redis WAIT on the connection that enqueued it), and fails with E_NOT_REPLICATED when the
 * replica does not confirm in time; sending again with the same id then queues it once. On Redis Cluster
 * the WAIT must reach the node that ran the enqueue, whose replica is the one frozen there.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../src/broker/factory.ts";
import { createClient, type Client } from "../../src/client/client.ts";
import { ReplicationError } from "../../src/errors.ts";
import { startRedisCluster, type RedisClusterHandle } from "../support/redis-cluster.ts";
import { redisServerAvailable } from "../support/redis-server.ts";
import { startSentinelSetup, type SentinelSetup } from "../support/redis-sentinel.ts";

describe.skipIf(!redisServerAvailable())("enqueue_min_replicas", () => {
  let s: SentinelSetup;
  let client: Client;
  let replica: Redis;
  let master: Redis;

  beforeAll(async () => {
    s = await startSentinelSetup();
    const transport = await createTransport(s.url, { failFast: true, enqueueMinReplicas: 1, enqueueReplicaTimeoutMs: 400 });
    await transport.connect();
    client = await createClient({ transport });
    replica = new Redis(s.replica.url);
    master = new Redis(s.master.url);
  }, 60_000);

  afterAll(async () => {
    if (s?.replica.pid) process.kill(s.replica.pid, "SIGCONT");
    replica?.disconnect();
    master?.disconnect();
    await client?.transport.close();
    await s?.cleanup();
  });

  it("a send returns once the replica has the task", async () => {
    for (let i = 0; i < 20; i++) {
      const ref = await client.send("demo.add", [i, 1]);
      // Read from the replica the moment send returned: WAIT made the master wait for its acknowledgement.
      expect(await replica.exists(`qw:j:${ref.id}`)).toBe(1);
    }
  });

  it("with the replica frozen, a send fails with E_NOT_REPLICATED after the timeout; resent with the same id, it is queued once", async () => {
    const pid = s.replica.pid!;
    process.kill(pid, "SIGSTOP");
    let err: unknown;
    const t0 = Date.now();
    try {
      await client.send("demo.add", [3, 4], { id: "frozen-1" });
    } catch (e) {
      err = e;
    } finally {
      process.kill(pid, "SIGCONT");
    }
    expect(err).toBeInstanceOf(ReplicationError);
    expect(err).toMatchObject({ code: "E_NOT_REPLICATED", ids: ["frozen-1"], confirmed: 0, wanted: 1 });
    expect((err as Error).message).toMatch(/^task frozen-1 reached the Redis master, but 0 of the 1 replica\(s\) enqueue_min_replicas asks for confirmed it within 400 ms/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    // The master has it; sending it again (replica back) confirms it and does not queue a second copy.
    expect(await master.exists("qw:j:frozen-1")).toBe(1);
    const again = await client.send("demo.add", [3, 4], { id: "frozen-1" });
    expect(again.duplicate).toBe(true);
    expect(await replica.exists("qw:j:frozen-1")).toBe(1);
    expect(await master.zscore("qw:q:default:ready", "frozen-1")).not.toBeNull();
  });
});

describe.skipIf(!redisServerAvailable())("enqueue_min_replicas on Redis Cluster", () => {
  let c: RedisClusterHandle;

  beforeAll(async () => {
    c = await startRedisCluster({ replicas: 1 });
  }, 90_000);

  afterAll(async () => {
    await c?.cleanup();
  });

  it("waits on the node that holds qworker's slot: freezing that node's replica fails the send", async () => {
    const transport = await createTransport(c.url, { failFast: true, enqueueMinReplicas: 1, enqueueReplicaTimeoutMs: 400 });
    await transport.connect();
    const client = await createClient({ transport });
    try {
      // The replica of the master serving qworker's keys. A WAIT sent to any other master would still
      // count that master's own (running) replica and pass.
      const masterPort = await c.masterOf(await c.keySlot("{qw}:queues"));
      const master = new Redis(masterPort, "127.0.0.1");
      let info = "";
      await expect
        .poll(async () => /slave0:[^\n]*state=online/.test((info = await master.info("replication"))), { timeout: 20_000 })
        .toBe(true);
      master.disconnect();
      expect((await client.send("demo.add", [1, 2])).duplicate).toBe(false);
      const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(info)?.[1]);
      const replica = c.nodes.find((n) => n.port === replicaPort);
      expect(replica?.pid).toBeDefined();
      process.kill(replica!.pid!, "SIGSTOP");
      try {
        await expect(client.send("demo.add", [3, 4])).rejects.toMatchObject({ code: "E_NOT_REPLICATED", confirmed: 0 });
      } finally {
        process.kill(replica!.pid!, "SIGCONT");
      }
      expect((await client.send("demo.add", [5, 6])).duplicate).toBe(false);
    } finally {
      await transport.close();
    }
  }, 60_000);
});
