/**
 * A Redis that wants a password: a missing or wrong one is a login problem, not an unreachable server, so
 * the one-line error must point at the URL's credentials (it said "start redis-server"), and a worker must
 * not wait for it as it waits for a Redis that is still starting.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeConnection, openConnection } from "../../src/broker/redis/connection.ts";
import { BrokerError, BrokerUnreachableError } from "../../src/errors.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

describe.skipIf(!redisServerAvailable())("a Redis with a password", () => {
  let redis: RedisServerHandle;
  const at = () => `127.0.0.1:${redis.port}`;

  beforeAll(async () => {
    redis = await startRedisServer();
    const admin = new Redis(redis.url);
    await admin.call("ACL", "SETUSER", "default", "on", ">sekret", "allcommands", "allkeys", "allchannels", "resetpass", ">sekret");
    admin.disconnect();
  });
  afterAll(async () => {
    // Open again, so cleanup's SHUTDOWN is not refused.
    const admin = new Redis(`redis://:sekret@${at()}`);
    await admin.call("ACL", "SETUSER", "default", "nopass").catch(() => undefined);
    admin.disconnect();
    await redis?.cleanup();
  });

  const connectError = (url: string, failFast: boolean) =>
    openConnection(url, { connectTimeoutMs: 3000, failFast }, "t").then(
      async (c) => {
        await closeConnection(c);
        return undefined;
      },
      (e: unknown) => e,
    );

  it("refuses a missing or wrong one with a one-line error naming the credentials, fail-fast or not", async () => {
    for (const failFast of [true, false]) {
      for (const [url, reason] of [
        [`redis://${at()}`, "NOAUTH"],
        [`redis://:wrong@${at()}`, "WRONGPASS"],
        [`redis://bob:sekret@${at()}`, "WRONGPASS"],
      ] as const) {
        const err = await connectError(url, failFast);
        expect(err, `${url} failFast ${failFast}`).toBeInstanceOf(BrokerError);
        expect(err).not.toBeInstanceOf(BrokerUnreachableError);
        const message = (err as Error).message;
        expect(message).not.toContain("\n");
        expect(message).not.toContain("sekret");
        expect(message).not.toContain("wrong@");
        expect(message).toMatch(
          new RegExp(`^Redis at redis://.*127\\.0\\.0\\.1:\\d+ refused the login \\(${reason}[^)]*\\): check the user name and password in the broker URL`),
        );
      }
    }
  });

  it("the right one connects", async () => {
    const conn = await openConnection(`redis://:sekret@${at()}`, { connectTimeoutMs: 3000, failFast: true }, "t");
    try {
      expect(await conn.ping()).toBe("PONG");
    } finally {
      await closeConnection(conn);
    }
  });
});
