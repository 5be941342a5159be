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
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

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
});
