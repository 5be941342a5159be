/**
 * A revoke announced while a worker's subscriber connection was away never reaches it, and a task it had
 * prefetched would run although revoked. After the subscriber reconnects, the transport tells its revoke
 * listeners every revoke still held in the durable set. Here the announcement is not merely lost but never
 * sent (the id is written to the set directly), so only the resync can deliver it.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createClient } from "../../src/client/client.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { EXEC_TASKS, ExecEnv, sleep, waitUntil } from "./execution-harness.ts";

describe.skipIf(!redisServerAvailable())("revokes after a subscriber reconnect", () => {
  let server: RedisServerHandle;
  let raw: Redis;
  let t: Transport;

  beforeAll(async () => {
    server = await startRedisServer();
    raw = new Redis(server.url);
    t = createRedisTransport(server.url);
    await t.connect();
  });
  afterAll(async () => {
    raw?.disconnect();
    await t?.close();
    await server?.cleanup();
  });

  it("are told to the revoke listeners again, held ones only, without terminate", async () => {
    const heard: { ids: string[]; terminate: boolean; ttlMs: number | undefined }[] = [];
    const off = await t.onRevoke((ids, terminate, ttlMs) => heard.push({ ids, terminate, ttlMs }));
    try {
      const now = Number((await raw.time())[0]) * 1000;
      await raw.zadd("qw:revoked", now + 60_000, "held-1", now - 1000, "lapsed-1");
      await raw.client("KILL", "TYPE", "pubsub");
      await expect.poll(() => heard.length, { timeout: 5000, interval: 20 }).toBe(1);
      expect(heard[0]!.ids).toEqual(["held-1"]);
      expect(heard[0]!.terminate).toBe(false);
      expect(heard[0]!.ttlMs).toBeGreaterThan(50_000);
    } finally {
      off();
    }
  });

  it("are told again with terminate when they were terminating revokes", async () => {
    await raw.del("qw:revoked");
    await t.revoke(["term-1"], 60_000, true);
    await t.revoke(["plain-1"], 60_000, false);
    const heard: { ids: string[]; terminate: boolean }[] = [];
    const off = await t.onRevoke((ids, terminate) => heard.push({ ids, terminate }));
    try {
      await raw.client("KILL", "TYPE", "pubsub");
      await expect.poll(() => heard.length, { timeout: 5000, interval: 20 }).toBe(2);
      expect(heard).toEqual(
        expect.arrayContaining([
          { ids: ["plain-1"], terminate: false },
          { ids: ["term-1"], terminate: true },
        ]),
      );
    } finally {
      off();
    }
  });

  it("tell a revoke made for ever (ttlMs 0) again as one with no TTL, terminate included", async () => {
    await raw.del("qw:revoked", "qw:revoked:terminate");
    await t.revoke(["forever-term"], 0, true);
    await t.revoke(["forever-plain"], -1, false);
    await sleep(50);
    const heard: { ids: string[]; terminate: boolean; ttlMs: number | undefined }[] = [];
    const off = await t.onRevoke((ids, terminate, ttlMs) => heard.push({ ids, terminate, ttlMs }));
    try {
      await raw.client("KILL", "TYPE", "pubsub");
      await expect.poll(() => heard.length, { timeout: 5000, interval: 20 }).toBe(2);
      expect(heard).toEqual(
        expect.arrayContaining([
          { ids: ["forever-plain"], terminate: false, ttlMs: undefined },
          { ids: ["forever-term"], terminate: true, ttlMs: undefined },
        ]),
      );
    } finally {
      off();
    }
  });

  it("keep a terminate as long as the id's longest terminating revoke, never beyond its revoke, and refuse it over another program's key", async () => {
    await t.revoke(["term-2"], 60_000, true);
    const terminateUntil = Number(await raw.zscore("qw:revoked:terminate", "term-2"));
    expect(terminateUntil).toBe(Number(await raw.zscore("qw:revoked", "term-2")));
    // A shorter revoke, plain or terminating, cuts neither short.
    await t.revoke(["term-2"], 30_000, false);
    await t.revoke(["term-2"], 10_000, true);
    expect(Number(await raw.zscore("qw:revoked:terminate", "term-2"))).toBe(terminateUntil);
    expect(Number(await raw.zscore("qw:revoked", "term-2"))).toBe(terminateUntil);
    // A longer plain revoke holds the id longer, but does not make its terminate last longer.
    await t.revoke(["term-2"], 120_000, false);
    expect(Number(await raw.zscore("qw:revoked", "term-2"))).toBeGreaterThan(terminateUntil);
    expect(Number(await raw.zscore("qw:revoked:terminate", "term-2"))).toBe(terminateUntil);
    // A longer terminating revoke does, up to the id's revoke.
    await t.revoke(["term-2"], 0, true);
    expect(Number(await raw.zscore("qw:revoked:terminate", "term-2"))).toBe(1e15);
    expect(Number(await raw.zscore("qw:revoked", "term-2"))).toBe(1e15);
    // A plain revoke never starts a terminate entry.
    await t.revoke(["plain-2"], 60_000, false);
    expect(await raw.zscore("qw:revoked:terminate", "plain-2")).toBeNull();

    await raw.del("qw:revoked:terminate");
    await raw.set("qw:revoked:terminate", "not ours");
    try {
      await expect(t.revoke(["term-3"], 60_000, true)).rejects.toThrow(/qw:revoked:terminate holds a string/);
      expect(await raw.zscore("qw:revoked", "term-3")).toBeNull();
      await t.revoke(["plain-3"], 60_000, false);
      expect(await raw.zscore("qw:revoked", "plain-3")).not.toBeNull();
    } finally {
      await raw.del("qw:revoked:terminate");
    }
  });
});

/**
 * A `--terminate` revoke whose announcement a worker missed: its subscriber connection is killed, and kept
 * from reconnecting (maxclients below the clients connected) while the revoke is made, so the announcement
 * certainly reaches no one. The task the worker runs must still be terminated once the subscriber is back,
 * from the revoke's durable record, not left to finish as a plain revoke would.
 */
describe.skipIf(!redisServerAvailable())("a terminating revoke missed by a worker's subscriber", () => {
  let server: RedisServerHandle;
  let env: ExecEnv;
  let raw: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    raw = new Redis(server.url);
    env = new ExecEnv(server.url, { tasks_dir: EXEC_TASKS, concurrency: 1 });
  });
  afterAll(async () => {
    raw?.disconnect();
    await server?.cleanup();
    env?.cleanup();
  });

  it("terminates the running task once the subscriber is back", { timeout: 90_000 }, async () => {
    const worker = env.worker();
    const client = await createClient({ brokerUrl: server.url });
    try {
      await worker.waitForLog(/^tasks \(/, 60_000);
      const id = (await client.send("exec.sleepy", [60_000])).id;
      await waitUntil(() => env.runs().some((x) => x.id === id), 30_000, "the sleepy task to start");

      await raw.config("SET", "maxclients", "1");
      try {
        expect(await raw.client("KILL", "TYPE", "pubsub")).toBeGreaterThan(0);
        await client.transport.revoke([id], 60_000, true);
        await sleep(500);
        // Nothing heard: the task still runs.
        expect(worker.logs().some((l) => l.msg.includes("revoked with --terminate"))).toBe(false);
        expect((await client.ref(id).state())?.state).not.toBe("REVOKED");
      } finally {
        await raw.config("SET", "maxclients", "10000");
      }

      await waitUntil(async () => (await client.ref(id).state())?.state === "REVOKED", 10_000, "the running task to be terminated");
      expect(worker.logs().some((l) => l.msg.includes(`exec.sleepy[${id}] revoked with --terminate; aborting it`))).toBe(true);
      expect(env.runs().filter((x) => x.id === id && x.phase === "end")).toHaveLength(0);
    } finally {
      await client.close();
      await worker.stop();
    }
  });
});
