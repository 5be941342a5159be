/**
 * On Redis Cluster, what was published while the transport's subscriber connection was away must be caught
 * up as it is on a single server (redis-result-wait-reconnect, redis-revoke-resync): pending result waits
 * read their keys again, and the held revokes are told to the revoke listeners again. ioredis's Cluster
 * replaces a dropped subscriber connection by itself and says nothing of it, so before the fix a result wait
 * hung until its timeout and a revoke was never heard. Where the result or revoke is written without a
 * PUBLISH, only the catch-up can deliver it; the big result is a PUBLISH that Redis itself drops. The last
 * test has the catch-up's reads fail (the master of the keys' slot is down while the subscriber comes back
 * on another node): before they were retried, nothing read again, as no later reconnect came. A reconnect
 * of the whole transport while a wait's own subscribe or first read is unanswered must not end the wait:
 * a Cluster fails such commands with "Connection is closed." when it reconnects as a whole.
 */
import { randomUUID } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createClient } from "../../src/client/client.ts";
import { configSchema } from "../../src/config/schema.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { redisCliAvailable, startRedisCluster, type RedisClusterHandle } from "../support/redis-cluster.ts";
import { redisServerAvailable } from "../support/redis-server.ts";
import { within } from "../support/within.ts";

/** Bigger than the 1 MB pubsub output buffer limit set below. */
const BIG = 2 * 1024 * 1024;
/** Waits time out long after this: resolving within it means the catch-up delivered, not the deadline. */
const PROMPTLY_MS = 4000;
const WAIT_TIMEOUT_MS = 20_000;
/** CLIENT PAUSE of a master, long enough to hold a command past a reconnect() made right after it was sent. */
const PAUSE_MS = 2000;

describe.skipIf(!redisServerAvailable() || !redisCliAvailable())("Redis Cluster: a subscriber that reconnects catches up", () => {
  let cluster: RedisClusterHandle;
  /** One plain connection per node, for commands that must reach every node (CLIENT KILL, CONFIG SET). */
  let nodes: Redis[];
  /** Writes keys the way any cluster client does (routed by slot). */
  let raw: Cluster;
  /** Stores and publishes results as a worker does (settle.lua). */
  let worker: Transport;

  beforeAll(async () => {
    // Replicas: the node a subscriber sits on can then be shut down while the cluster still serves.
    cluster = await startRedisCluster({ replicas: 1 });
    nodes = cluster.nodes.map((n) => new Redis({ host: n.host, port: n.port }));
    raw = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
    worker = createRedisTransport(cluster.url);
    await worker.connect();
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes ?? []) n.disconnect();
    raw?.disconnect();
    await worker?.close();
    await cluster?.cleanup();
  });

  /** Subscribers of `channel` over the whole cluster (PUBSUB NUMSUB counts only a node's own clients). */
  async function subscribers(channel: string): Promise<number> {
    const counts = await Promise.all(nodes.map(async (n) => ((await n.call("PUBSUB", "NUMSUB", channel)) as [string, number])[1]));
    return counts.reduce((a, b) => a + b, 0);
  }

  async function subscribed(channel: string): Promise<void> {
    await expect.poll(() => subscribers(channel), { timeout: 5000, interval: 20 }).toBe(1);
  }

  /** Drops every subscriber connection in the cluster: only this file's transports subscribe. */
  async function killSubscribers(): Promise<void> {
    await Promise.all(nodes.map((n) => n.client("KILL", "TYPE", "pubsub")));
  }

  /** The index in `nodes` of the one node that has a subscriber connection. */
  async function subscriberNode(): Promise<number> {
    const lists = await Promise.all(nodes.map(async (n) => String(await n.call("CLIENT", "LIST", "TYPE", "pubsub")).trim()));
    const at = lists.flatMap((l, i) => (l === "" ? [] : [i]));
    expect(at).toHaveLength(1);
    return at[0]!;
  }

  /** A result wait; a test that fails before awaiting it closes its transport, which rejects it unheard. */
  function resultOf(t: Transport, id: string): Promise<string | null> {
    const wait = t.waitForResult(id, WAIT_TIMEOUT_MS);
    wait.catch(() => {});
    return wait;
  }

  /**
   * A result wait (see resultOf) once its own read of the key, made after it subscribed, has found nothing:
   * a result stored from then on without a PUBLISH reaches it only through the catch-up. Awaiting only the
   * subscription (NUMSUB) left that read to come late under load, after the result was stored: it found the
   * result itself, so the catch-up went untested, and the big result's drop of the subscriber, on another
   * node after the cluster bus carried the PUBLISH, could come after the wait resolved.
   */
  async function readWait(t: Transport, id: string): Promise<{ got: Promise<string | null> }> {
    const read = vi.spyOn(t, "getResult");
    try {
      const got = resultOf(t, id);
      // A call's entry is there from the call on, "incomplete" until its promise settles.
      await expect.poll(() => read.mock.settledResults[0]?.type ?? "incomplete", { timeout: 5000, interval: 20 }).not.toBe("incomplete");
      expect(read.mock.settledResults).toEqual([{ type: "fulfilled", value: null }]);
      return { got };
    } finally {
      read.mockRestore();
    }
  }

  /** Moves the one subscriber connection (listening on `channel`) from node to node until `where` holds. */
  async function moveSubscriber(channel: string, where: (at: number) => boolean | Promise<boolean>): Promise<number> {
    // The subscriber picks its node at random.
    let at = await subscriberNode();
    for (let tries = 0; !(await where(at)); tries++) {
      expect(tries).toBeLessThan(60);
      await nodes[at]!.client("KILL", "TYPE", "pubsub");
      await expect.poll(() => subscriberNode().catch(() => -1), { timeout: 5000, interval: 20 }).not.toBe(-1);
      await subscribed(channel);
      at = await subscriberNode();
    }
    return at;
  }

  /** The index in `nodes` of the master of the slot of {qw}, every key of a transport's. */
  async function qwMaster(): Promise<number> {
    const port = await cluster.masterOf(await cluster.keySlot("{qw}"));
    const m = cluster.nodes.findIndex((n) => n.port === port);
    expect(m).toBeGreaterThanOrEqual(0);
    return m;
  }

  async function waiter(): Promise<Transport> {
    const t = createRedisTransport(cluster.url);
    await t.connect();
    return t;
  }

  it("a result wait resolves with a result stored while its subscriber connection was killed", async () => {
    const t = await waiter();
    try {
      const id = `cl-${randomUUID()}`;
      const { got } = await readWait(t, id);
      await subscribed(`{qw}:r:${id}`);
      // Stored with no PUBLISH, as if published while the subscriber was away.
      await raw.set(`{qw}:r:${id}`, '{"state":"SUCCESS","result":1}');
      await killSubscribers();
      expect(await within(got, PROMPTLY_MS)).toEqual({ value: '{"state":"SUCCESS","result":1}' });
    } finally {
      await t.close();
    }
  });

  it("a result wait resolves with a result larger than the pubsub output buffer limit, whose PUBLISH dropped the subscriber", async () => {
    await Promise.all(nodes.map((n) => n.config("SET", "client-output-buffer-limit", "pubsub 1mb 1mb 0")));
    const drops = () => cluster.nodes.map((n) => n.logTail()).join("\n").split("\n").filter((l) => l.includes("for overcoming of output buffer limits")).length;
    const t = await waiter();
    try {
      const id = `big-${randomUUID()}`;
      const queue = `q-${randomUUID().slice(0, 8)}`;
      await worker.enqueue([{ id, queue, priority: 0, payload: "{}" }]);
      const [r] = await worker.reserve({ queues: [queue], max: 1, leaseMs: 30_000, workerId: "w-big", waitMs: 0 });
      expect(r?.id).toBe(id);
      const { got } = await readWait(t, id);
      await subscribed(`{qw}:r:${id}`);
      const before = drops();
      const result = JSON.stringify({ state: "SUCCESS", result: "x".repeat(BIG) });
      expect(await worker.settle([{ id, token: r!.token, queue, outcome: "SUCCESS", result, resultTtlMs: 60_000 }])).toEqual([id]);
      expect(await within(got, PROMPTLY_MS)).toEqual({ value: result });
      // The case at hand: Redis did drop the subscriber for this message. Its log line comes through
      // redis-server's stdout pipe, which this process reads on its own schedule, not before the wait's reply.
      await expect.poll(drops, { timeout: 5000, interval: 20 }).toBeGreaterThan(before);
    } finally {
      await t.close();
      await Promise.all(nodes.map((n) => n.config("SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60")));
    }
  });

  it("a result wait resolves with a result stored while the transport reconnected to the whole cluster", async () => {
    const t = await waiter();
    try {
      const id = `rc-${randomUUID()}`;
      const { got } = await readWait(t, id);
      await subscribed(`{qw}:r:${id}`);
      await raw.set(`{qw}:r:${id}`, '{"state":"SUCCESS","result":2}');
      await t.reconnect!();
      expect(await within(got, PROMPTLY_MS)).toEqual({ value: '{"state":"SUCCESS","result":2}' });
    } finally {
      await t.close();
    }
  });

  it.each([
    ["first read", false],
    ["subscribe", true],
  ] as const)("a result wait survives a reconnect of the whole transport while its %s is unanswered", async (_step, subscriberOnMaster) => {
    const t = await waiter();
    const m = await qwMaster();
    let paused = false;
    try {
      // Another wait opens the subscriber, then it is moved: onto the master of {qw}, where the pause below
      // holds up the wait's SUBSCRIBE, or off it, where the SUBSCRIBE is answered and only its GET is held.
      const opener = `{qw}:r:op-${randomUUID()}`;
      resultOf(t, opener.slice("{qw}:r:".length));
      await subscribed(opener);
      await moveSubscriber(opener, (at) => (at === m) === subscriberOnMaster);
      const id = `cut-${randomUUID()}`;
      // Stored before the wait, with no PUBLISH: a read must find it.
      await raw.set(`{qw}:r:${id}`, '{"state":"SUCCESS","result":5}');
      const read = vi.spyOn(t, "getResult");
      // Every client of the master waits until the pause ends; its replica and the cluster bus do not.
      await nodes[m]!.client("PAUSE", PAUSE_MS, "ALL");
      paused = true;
      const got = resultOf(t, id);
      // The wait's SUBSCRIBE is sent in the microtasks that follow waitForResult, before this callback runs;
      // its GET, once getResult was called.
      if (subscriberOnMaster) await new Promise((r) => setImmediate(r));
      else await expect.poll(() => read.mock.calls.length, { timeout: 5000, interval: 5 }).toBe(1);
      read.mockRestore();
      await t.reconnect!();
      // Found after the pause, by the wait's read or by the catch-up, long before the wait's own deadline.
      expect(await within(got, PAUSE_MS + PROMPTLY_MS)).toEqual({ value: '{"state":"SUCCESS","result":5}' });
    } finally {
      await t.close();
      // The node answers again when its pause ends: the tests after this one need it.
      if (paused) await nodes[m]!.ping();
    }
  });

  it("the held revokes are told to the revoke listeners again after the subscriber connection was killed", async () => {
    const t = await waiter();
    const heard: { ids: string[]; terminate: boolean }[] = [];
    const off = await t.onRevoke((ids, terminate) => heard.push({ ids, terminate }));
    try {
      await subscribed("{qw}:control");
      const now = Number((await raw.time())[0]) * 1000;
      const id = `rv-${randomUUID()}`;
      // Held in the durable set, never announced.
      await raw.zadd("{qw}:revoked", now + 60_000, id);
      await killSubscribers();
      await expect.poll(() => heard.some((h) => h.ids.includes(id)), { timeout: PROMPTLY_MS, interval: 20 }).toBe(true);
      expect(heard.find((h) => h.ids.includes(id))!.terminate).toBe(false);
    } finally {
      off();
      await t.close();
    }
  });

  it("a worker does not run a task it had prefetched whose revoke was held while its subscriber connection was killed", async () => {
    const ran: string[] = [];
    let release: () => void = () => {};
    const registry = new TaskRegistry();
    const hold = defineTask("cl.hold", async () => {
      await new Promise<void>((r) => (release = r));
    });
    const note = defineTask("cl.note", () => void ran.push("cl.note"));
    for (const t of [hold, note]) registry.register(t.name!, t as never, "test");
    const prefix = "wk:";
    const config = configSchema.parse({ broker_url: cluster.url, redis_prefix: prefix, concurrency: 1, prefetch: 2, lease_timeout: 30, heartbeat_interval: 0.5 });
    const transport = createRedisTransport(cluster.url, { prefix });
    await transport.connect();
    const worker = new Worker({ transport, registry, config, logger: pino({ level: "silent" }) });
    await worker.start();
    const clientTransport = createRedisTransport(cluster.url, { prefix, failFast: true });
    const client = await createClient({ transport: clientTransport });
    await clientTransport.connect();
    try {
      await subscribed("{wk}:control");
      await client.send("cl.hold", []);
      const later = await client.send("cl.note", []);
      // Both leased: one running in the only slot, the other waiting in the prefetch.
      await expect.poll(() => raw.zcard("{wk}:q:default:active"), { timeout: 5000, interval: 20 }).toBe(2);
      const now = Number((await raw.time())[0]) * 1000;
      await raw.zadd("{wk}:revoked", now + 60_000, later.id);
      await killSubscribers();
      await expect.poll(async () => (await later.state())?.state, { timeout: PROMPTLY_MS, interval: 50 }).toBe("REVOKED");
      release();
      await expect.poll(() => raw.zcard("{wk}:q:default:active"), { timeout: 5000, interval: 20 }).toBe(0);
      expect(ran).toEqual([]);
    } finally {
      release();
      await worker.stop();
      await transport.close();
      await client.close();
    }
  });

  it("a result wait resolves with a result stored before the node its subscriber connection was on shut down", async () => {
    // Replicas are listed in CLUSTER SLOTS, and so known to clients, only once they have synced.
    const replicasListed = async () => ((await nodes[0]!.call("CLUSTER", "SLOTS")) as unknown[][]).every((range) => range.length > 3);
    await expect.poll(replicasListed, { timeout: 20_000, interval: 100 }).toBe(true);
    const t = await waiter();
    let stopped: number | undefined;
    try {
      const id = `sd-${randomUUID()}`;
      const channel = `{qw}:r:${id}`;
      const got = resultOf(t, id);
      await subscribed(channel);
      // Moved until it is on a replica.
      const at = await moveSubscriber(channel, async (i) => ((await nodes[i]!.role()) as string[])[0] === "slave");
      await raw.set(channel, '{"state":"SUCCESS","result":3}');
      stopped = at;
      await cluster.nodes[at]!.stop();
      expect(await within(got, PROMPTLY_MS)).toEqual({ value: '{"state":"SUCCESS","result":3}' });
    } finally {
      await t.close();
      if (stopped !== undefined) await cluster.nodes[stopped]!.start();
    }
  });

  it("the catch-up reads again until they succeed when the subscriber came back while the master of {qw} was down", async () => {
    const replicasListed = async () => ((await nodes[0]!.call("CLUSTER", "SLOTS")) as unknown[][]).every((range) => range.length > 3);
    await expect.poll(replicasListed, { timeout: 20_000, interval: 100 }).toBe(true);
    const t = await waiter();
    const heard: string[][] = [];
    const off = await t.onRevoke((ids) => heard.push(ids));
    let crashed: number | undefined;
    try {
      const id = `md-${randomUUID()}`;
      const channel = `{qw}:r:${id}`;
      // Past the failover below (node timeout 2 s, then the election): only a read after it can resolve this.
      const wait = t.waitForResult(id, 60_000);
      wait.catch(() => {});
      await subscribed(channel);
      await subscribed("{qw}:control");
      const m = await qwMaster();
      // The subscriber must come back on a node that stays up while the master is down: move it off the master.
      const at = await moveSubscriber(channel, (i) => i !== m);
      await subscribed("{qw}:control");
      // Stored with no PUBLISH, and on the replica before the master goes, so the promoted replica has them.
      const now = Number((await raw.time())[0]) * 1000;
      const revoked = `md-rv-${randomUUID()}`;
      await raw.set(channel, '{"state":"SUCCESS","result":4}');
      await raw.zadd("{qw}:revoked", now + 60_000, revoked);
      expect(await nodes[m]!.call("WAIT", "1", "5000")).toBe(1);
      crashed = m;
      // This file's own connection to it reconnects in vain until the restart below: not worth a warning.
      nodes[m]!.on("error", () => {});
      await cluster.nodes[m]!.kill9();
      // Back at once on a healthy node, well before the cluster has promoted the replica: the first
      // catch-up reads are sent to a master that is gone, and fail.
      await nodes[at]!.client("KILL", "TYPE", "pubsub");
      expect(await within(wait, 20_000)).toEqual({ value: '{"state":"SUCCESS","result":4}' });
      await expect.poll(() => heard.some((ids) => ids.includes(revoked)), { timeout: 5000, interval: 20 }).toBe(true);
    } finally {
      off();
      await t.close();
      if (crashed !== undefined) await cluster.nodes[crashed]!.start();
    }
  }, 60_000);
});
