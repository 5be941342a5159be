/**
 * A revoke finishes a waiting task as REVOKED, but never replaces a result already stored under its id:
 * that is the task's own, as on the embedded broker (which checks for one before it writes). Through the
 * Transport API a queued id has no result (enqueue clears it), so the result is planted here the way
 * another writer under the prefix (or an older qworker) could leave one.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { ReserveRequest, Transport } from "../../src/broker/transport.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

const req = (queue: string): ReserveRequest => ({ queues: [queue], max: 10, leaseMs: 30_000, workerId: "w-revoke-result", waitMs: 0 });
const OWN = JSON.stringify({ id: "x", state: "SUCCESS", result: 42 });

describe.skipIf(!redisServerAvailable())("Redis revoke and an existing result", () => {
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

  it("revoke removes a queued task but keeps the result its id already has, publishing nothing", async () => {
    await t.enqueue([{ id: "kept-1", queue: "rr", priority: 0, payload: "{}" }]);
    await raw.set("qw:r:kept-1", OWN);
    const sub = new Redis(server.url);
    const published: string[] = [];
    try {
      await sub.subscribe("qw:r:kept-1");
      sub.on("message", (_channel: string, message: string) => published.push(message));
      await t.revoke(["kept-1"], 60_000, false);
      expect(await t.reserve(req("rr"))).toEqual([]);
      expect(await t.getResult("kept-1")).toBe(OWN);
      // A REVOKED record published now would reach this subscriber well within this pause.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(published).toEqual([]);
    } finally {
      sub.disconnect();
    }
  });

  it("reserve finishes a task sent under a revoked id without replacing the result its id already has", async () => {
    await t.revoke(["kept-2"], 60_000, false);
    await t.enqueue([{ id: "kept-2", queue: "rr2", priority: 0, payload: "{}" }]);
    await raw.set("qw:r:kept-2", OWN);
    expect(await t.reserve(req("rr2"))).toEqual([]);
    expect(await raw.exists("qw:j:kept-2")).toBe(0);
    expect(await t.getResult("kept-2")).toBe(OWN);
  });
});
