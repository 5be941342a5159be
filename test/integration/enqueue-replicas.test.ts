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
  /** Waits up to 5 s for the replica: a loaded CI machine must not fail a healthy send. */
  let client: Client;
  /** Waits 400 ms, for the frozen replica. */
  let hasty: Client;
  let replica: Redis;
  let master: Redis;

  beforeAll(async () => {
    s = await startSentinelSetup();
    master = new Redis(s.master.url);
    replica = new Redis(s.replica.url);
    await replicaOnline(master);
    client = await replicatedClient(s.url, 5000);
    hasty = await replicatedClient(s.url, 400);
  }, 60_000);

  afterAll(async () => {
    if (s?.replica.pid) process.kill(s.replica.pid, "SIGCONT");
    replica?.disconnect();
    master?.disconnect();
    await client?.transport.close();
    await hasty?.transport.close();
    await s?.cleanup();
  });

  it("a send returns once the replica has the task", async () => {
    for (let i = 0; i < 20; i++) {
      const ref = await client.send("demo.add", [i, 1]);
      // Read from the replica the moment send returned: WAIT made the master wait for its acknowledgement.
      expect(await replica.exists(`qw:j:${ref.id}`)).toBe(1);
    }
    // A script cache emptied (as by a restart): the pipeline is sent again with the script's source.
    await master.script("FLUSH");
    const ref = await client.send("demo.add", [1, 1]);
    expect(await replica.exists(`qw:j:${ref.id}`)).toBe(1);
  });

  it("with the replica frozen, a send fails with E_NOT_REPLICATED after the timeout; resent with the same id, it is queued once", async () => {
    const pid = s.replica.pid!;
    process.kill(pid, "SIGSTOP");
    let err: unknown;
    const t0 = Date.now();
    try {
      await hasty.send("demo.add", [3, 4], { id: "frozen-1" });
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

  it("concurrent sends from one client share their waits: with the replica frozen, ten fail after two timeouts, not ten", async () => {
    // Healthy first: every one of them is on the replica when its send returns.
    const refs = await Promise.all(Array.from({ length: 10 }, (_, i) => client.send("demo.add", [i, 2])));
    for (const ref of refs) expect(await replica.exists(`qw:j:${ref.id}`)).toBe(1);

    const pid = s.replica.pid!;
    process.kill(pid, "SIGSTOP");
    const t0 = Date.now();
    let outcomes: PromiseSettledResult<unknown>[];
    try {
      outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => hasty.send("demo.add", [i, 3], { id: `frozen-many-${i}` })));
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const took = Date.now() - t0;
    for (const [i, o] of outcomes.entries()) {
      expect(o.status).toBe("rejected");
      expect((o as PromiseRejectedResult).reason).toMatchObject({ code: "E_NOT_REPLICATED", ids: [`frozen-many-${i}`] });
    }
    // One WAIT per send would hold the connection 10 × 400 ms; grouped, the first send's WAIT and one more.
    expect(took).toBeLessThan(2500);
  });
});

/** A client whose sends wait for one replica, at most `timeoutMs`. */
async function replicatedClient(url: string, timeoutMs: number): Promise<Client> {
  const transport = await createTransport(url, { failFast: true, enqueueMinReplicas: 1, enqueueReplicaTimeoutMs: timeoutMs });
  await transport.connect();
  return createClient({ transport });
}

/** Wait until the master lists its replica as online (its initial sync done); the INFO replication text. */
async function replicaOnline(master: Redis): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const info = await master.info("replication");
    if (/slave0:[^\n]*state=online/.test(info)) return info;
    if (Date.now() > deadline) throw new Error(`the replica did not come online in 20 s:\n${info}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!redisServerAvailable())("enqueue_min_replicas on Redis Cluster", () => {
  let c: RedisClusterHandle;

  beforeAll(async () => {
    c = await startRedisCluster({ replicas: 1 });
  }, 90_000);

  afterAll(async () => {
    await c?.cleanup();
  });

  it("waits on the node that holds qworker's slot: freezing that node's replica fails the send", async () => {
    const client = await replicatedClient(c.url, 5000);
    const hasty = await replicatedClient(c.url, 400);
    try {
      // The replica of the master serving qworker's keys. A WAIT sent to any other master would still
      // count that master's own (running) replica and pass.
      const masterPort = await c.masterOf(await c.keySlot("{qw}:queues"));
      const master = new Redis(masterPort, "127.0.0.1");
      const info = await replicaOnline(master);
      master.disconnect();
      expect((await client.send("demo.add", [1, 2])).duplicate).toBe(false);
      const replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(info)?.[1]);
      const replica = c.nodes.find((n) => n.port === replicaPort);
      expect(replica?.pid).toBeDefined();
      process.kill(replica!.pid!, "SIGSTOP");
      try {
        await expect(hasty.send("demo.add", [3, 4])).rejects.toMatchObject({ code: "E_NOT_REPLICATED", confirmed: 0 });
      } finally {
        process.kill(replica!.pid!, "SIGCONT");
      }
      expect((await client.send("demo.add", [5, 6])).duplicate).toBe(false);
    } finally {
      await client.close();
      await hasty.close();
    }
  }, 60_000);
});
