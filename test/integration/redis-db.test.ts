/**
 * The database a Redis URL names. ioredis goes on in db 0 when Redis refuses the URL's SELECT (a db past its
 * "databases" setting): tasks were queued to db 0 and a worker consumed db 0 while both reported the URL's
 * db. The first connect must fail instead, for a plain URL and one through Sentinel, for the CLI's
 * fail-fast connections and a worker's alike.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeConnection, openConnection } from "../../src/broker/redis/connection.ts";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { BrokerError } from "../../src/errors.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { startSentinelSetup, type SentinelSetup } from "../support/redis-sentinel.ts";

describe.skipIf(!redisServerAvailable())("a Redis URL's database", () => {
  let redis: RedisServerHandle;

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.cleanup();
  });

  it("one the server does not have fails the first connect with a one-line BrokerError, fail-fast or not", async () => {
    for (const failFast of [true, false]) {
      const err = await openConnection(`${redis.url}/16`, { connectTimeoutMs: 3000, failFast }, "t").then(
        async (c) => {
          await closeConnection(c);
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, `failFast ${failFast}`).toBeInstanceOf(BrokerError);
      expect((err as Error).message).toMatch(
        /^Redis at redis:\/\/127\.0\.0\.1:\d+\/16 has no database 16 \(ERR DB index is out of range\): use a database number below its "databases" setting \(16 by default: 0 to 15\), or set broker_url \/ QWORKER_BROKER_URL$/,
      );
    }
  });

  it("one it has is where the tasks go", async () => {
    const transport = createRedisTransport(`${redis.url}/15`, { prefix: "dbtest:", failFast: true });
    await transport.connect();
    const admin = new Redis(`${redis.url}/15`);
    try {
      await transport.enqueue([{ id: "t-db15", queue: "default", priority: 0, payload: "{}" }]);
      expect(await admin.keys("dbtest:*")).not.toHaveLength(0);
      expect(await admin.select(0).then(() => admin.keys("dbtest:*"))).toHaveLength(0);
    } finally {
      admin.disconnect();
      await transport.close();
    }
  });
});

describe.skipIf(!redisServerAvailable())("a Sentinel URL's database", () => {
  let s: SentinelSetup;

  beforeAll(async () => {
    s = await startSentinelSetup();
  }, 60_000);
  afterAll(async () => {
    await s?.cleanup();
  });

  it("one the master does not have fails the first connect the same way", async () => {
    const err = await openConnection(`${s.url}/99`, { connectTimeoutMs: 3000, failFast: false }, "t").then(
      async (c) => {
        await closeConnection(c);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as Error).message).toMatch(/^the Redis master through the sentinels of redis\+sentinel:\/\/127\.0\.0\.1:\d+\/qworker-test\/99 has no database 99 \(ERR DB index is out of range\)/);
  });
});
