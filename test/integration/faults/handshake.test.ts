/**
 * A server that accepts connections and never answers them (a stopped redis-server, a proxy that lost
 * its upstream): every connect attempt must end within the connect timeout, so a first connect fails with
 * one line, and a worker's lazily opened blocking connection or a reconnect does not wedge it for ever.
 * The e2e counterpart (the CLI against a SIGSTOPped Redis) is in test/e2e/cli.test.ts.
 */
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import { Keys } from "../../../src/broker/redis/keys.ts";
import type { ReserveRequest, Transport } from "../../../src/broker/transport.ts";
import { enqueueNumbered } from "../../support/fault-enqueue.ts";
import { startFaultProxy, type FaultProxy } from "../../support/fault-proxy.ts";
import { redisServerAvailable, startLoadingRedisServer, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";
import { redisCliAvailable, startRedisCluster } from "../../support/redis-cluster.ts";
import { within } from "../../support/within.ts";

const CONNECT_TIMEOUT_MS = 500;
const reserveReq: ReserveRequest = { queues: ["default"], max: 5, leaseMs: 30_000, workerId: "w-handshake", waitMs: 300 };

describe.skipIf(!redisServerAvailable())("connections to a server that accepts and never answers", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(): Promise<{ redis: RedisServerHandle; proxy: FaultProxy; direct: Transport }> {
    const redis = await startRedisServer();
    cleanups.push(() => redis.cleanup());
    const proxy = await startFaultProxy(redis.port);
    cleanups.push(() => proxy.close());
    const direct = createRedisTransport(redis.url);
    await direct.connect();
    cleanups.push(() => direct.close());
    return { redis, proxy, direct };
  }

  function viaProxy(proxy: FaultProxy): Transport {
    const t = createRedisTransport(proxy.url, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    cleanups.push(() => within(t.close(), 2000).then(() => {}));
    return t;
  }

  it("a first connect fails with a one-line reason instead of hanging", async () => {
    const { proxy } = await setUp();
    proxy.stallNew(true);
    const started = Date.now();
    const out = await within(viaProxy(proxy).connect(), 5000);
    expect(out).not.toBe("hung");
    expect(out).toHaveProperty("error");
    const err = (out as { error: Error }).error;
    expect(err.message).toMatch(/accepted the connection but did not answer within 0\.5 s/);
    expect(err.message).not.toContain("\n");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("a server that stops answering half-way through the handshake: the connect still ends in time", async () => {
    const { proxy } = await setUp();
    // Forwarded until the first reply (CLIENT SETNAME's OK) arrives, then silent: what a freeze that lands
    // during a connect looks like. The ready check never comes back.
    proxy.stallNew(true, { afterFirstReply: true });
    const out = await within(viaProxy(proxy).connect(), 5000);
    expect(out).not.toBe("hung");
    expect((out as { error: Error }).error.message).toMatch(/answered, then stopped answering before it was ready \(0\.5 s\)/);
  });

  it("the blocking connection a worker opens on its first idle wait: a stalled one fails the reserve, the next reserve works", async () => {
    const { proxy, direct } = await setUp();
    const t = viaProxy(proxy);
    await t.connect();
    // The queue is empty, so reserve goes on to open its blocking connection: into the stall.
    proxy.stallNew(true);
    const stalled = await within(t.reserve(reserveReq), 5000);
    expect(stalled).not.toBe("hung");
    expect(stalled).toHaveProperty("error");
    proxy.stallNew(false);
    await enqueueNumbered(direct, ["after"]);
    const out = await within(t.reserve(reserveReq), 5000);
    expect(out).not.toBe("hung");
    expect((out as { value: { id: string }[] }).value.map((r) => r.id)).toEqual(["t-after"]);
  });

  it("a result wait whose subscriber connection stalls fails, and the next wait opens it again", async () => {
    const { redis, proxy } = await setUp();
    const t = viaProxy(proxy);
    await t.connect();
    proxy.stallNew(true);
    const stalled = await within(t.waitForResult("r-1", 10_000), 5000);
    expect(stalled).not.toBe("hung");
    expect(stalled).toHaveProperty("error");
    proxy.stallNew(false);
    const waiting = t.waitForResult("r-1", 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const raw = new Redis(redis.url);
    await raw.publish(new Keys("qw:").result("r-1"), "done");
    raw.disconnect();
    expect(await within(waiting, 5000)).toEqual({ value: "done" });
  });

  it("a rebuilt connection whose handshake stalls keeps retrying, and its queued commands run once the server answers", async () => {
    const { proxy, direct } = await setUp();
    const t = viaProxy(proxy);
    await t.connect();
    await enqueueNumbered(direct, ["queued"]);
    // What the watchdog does after a silence: drop the connections and connect again, here into a stall.
    proxy.freeze();
    proxy.stallNew(true);
    await t.reconnect!();
    const pending = t.reserve({ ...reserveReq, waitMs: 0 });
    // Several connect attempts time out meanwhile; none of them may leave the connection stuck.
    await new Promise((r) => setTimeout(r, 3 * CONNECT_TIMEOUT_MS));
    proxy.stallNew(false);
    const out = await within(pending, 5000);
    expect(out).not.toBe("hung");
    expect((out as { value: { id: string }[] }).value.map((r) => r.id)).toEqual(["t-queued"]);
  });
});

describe.skipIf(!redisServerAvailable())("connections to a Redis that is loading its data set", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function loadingRedis(): Promise<RedisServerHandle> {
    const redis = await startLoadingRedisServer();
    cleanups.push(() => redis.cleanup());
    return redis;
  }

  it("a CLI command or an app's client says it is loading, in one line", async () => {
    const redis = await loadingRedis();
    const t = createRedisTransport(redis.url, { failFast: true, connectTimeoutMs: CONNECT_TIMEOUT_MS });
    cleanups.push(() => within(t.close(), 2000).then(() => {}));
    const out = await within(t.connect(), 5000);
    expect(out).not.toBe("hung");
    const err = (out as { error: Error }).error;
    expect(err.message).toMatch(/^Redis at redis:\/\/127\.0\.0\.1:\d+\/? is still loading its data set after a restart \(about \d+ s left, by its own estimate\): try again once it has loaded/);
  });

  it("a worker's connection waits for the load to finish instead of failing", async () => {
    const redis = await loadingRedis();
    const t = createRedisTransport(redis.url, { connectTimeoutMs: CONNECT_TIMEOUT_MS });
    cleanups.push(() => within(t.close(), 2000).then(() => {}));
    const out = await within(t.connect(), 20_000);
    expect(out).toEqual({ value: undefined });
    expect(await t.stats(["default"])).toEqual([expect.objectContaining({ name: "default", ready: 0 })]);
  });
});

describe.skipIf(!redisServerAvailable() || !redisCliAvailable())("connections to a Redis Cluster whose nodes accept and never answer", () => {
  // A Cluster's first connect starts with a slot-map refresh, which ioredis bounds itself (slotsRefreshTimeout);
  // the nodes' own handshakes are guarded as on a single Redis. This pins down what a user sees either way.
  it("every node stopped: a first connect fails in one line within seconds instead of hanging", async () => {
    const cluster = await startRedisCluster();
    for (const node of cluster.nodes) process.kill(node.pid!, "SIGSTOP");
    try {
      const t = createRedisTransport(cluster.url, { failFast: true, connectTimeoutMs: CONNECT_TIMEOUT_MS });
      const started = Date.now();
      const out = await within(t.connect(), 15_000);
      expect(out).not.toBe("hung");
      expect((out as { error: Error }).error.message).toMatch(/^cannot reach the Redis Cluster at redis\+cluster:\/\/.* check that its nodes run and the cluster is up/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const node of cluster.nodes) if (node.pid !== undefined) process.kill(node.pid, "SIGCONT");
      await cluster.cleanup();
    }
  }, 60_000);
});
