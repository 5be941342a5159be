/**
 * The three scripts that write a Celery result (celery_store, celery_retry, celery_settle) share one rule,
 * from lua/lib/celery_result.lua: the meta is stored and published unless a SUCCESS is already stored, as
 * Celery itself never lets a late or duplicate state replace a success. Run against a real Redis, with a
 * lease set up as celery_claim.lua leaves it.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runScript } from "../../src/broker/redis/scripts.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

const P = "qw:";
/** qworker's name for a Celery queue's leases: <p>q:celery:<queue>:active (docs/celery.md). */
const Q = "celery:default";
const meta = (status: string) => JSON.stringify({ status, result: null, task_id: "x" });

describe.skipIf(!redisServerAvailable())("Celery result scripts", () => {
  let server: RedisServerHandle;
  let redis: Redis;
  let sub: Redis;
  const published: [string, string][] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
    sub = new Redis(server.url);
    await sub.psubscribe("celery-task-meta-*");
    sub.on("pmessage", (_p: string, channel: string, message: string) => published.push([channel, message]));
  });
  afterAll(async () => {
    sub?.disconnect();
    redis?.disconnect();
    await server?.cleanup();
  });

  /** A leased Celery message (as celery_claim.lua leaves it) and its result key, optionally holding `stored`. */
  async function leased(stored?: string): Promise<{ id: string; token: string; rk: string }> {
    const id = `c-${randomUUID()}`;
    const token = `tok-${randomUUID()}`;
    await redis.hset(`${P}j:${id}`, "t", token, "w", "w1");
    await redis.zadd(`${P}q:${Q}:active`, Date.now() + 30_000, id);
    await redis.sadd(`${P}w:w1:jobs`, id);
    const rk = `celery-task-meta-${id}`;
    if (stored) await redis.set(rk, stored);
    return { id, token, rk };
  }

  const status = async (rk: string) => (JSON.parse((await redis.get(rk)) ?? "{}") as { status?: string }).status;
  const publishedOn = async (rk: string) => {
    await new Promise((r) => setTimeout(r, 50));
    return published.filter(([c]) => c === rk).map(([, m]) => (JSON.parse(m) as { status: string }).status);
  };

  it("celery_store stores and publishes STARTED, but never over a SUCCESS", async () => {
    const fresh = await leased();
    expect(await runScript(redis, "celery_store", [P, fresh.id, fresh.token, fresh.rk, meta("STARTED"), 60])).toBe(1);
    expect(await status(fresh.rk)).toBe("STARTED");
    expect(await redis.ttl(fresh.rk)).toBeGreaterThan(0);
    expect(await publishedOn(fresh.rk)).toEqual(["STARTED"]);

    const done = await leased(meta("SUCCESS"));
    expect(await runScript(redis, "celery_store", [P, done.id, done.token, done.rk, meta("STARTED"), 60])).toBe(0);
    expect(await status(done.rk)).toBe("SUCCESS");
    expect(await publishedOn(done.rk)).toEqual([]);
  });

  it("celery_retry re-queues the message and stores RETRY, except over a SUCCESS", async () => {
    for (const [stored, expected] of [
      [undefined, "RETRY"],
      [meta("SUCCESS"), "SUCCESS"],
    ] as const) {
      const m = await leased(stored);
      const list = `celery-${randomUUID()}`;
      expect(await runScript(redis, "celery_retry", [P, m.id, m.token, Q, list, "envelope", m.rk, meta("RETRY"), 0])).toBe(1);
      expect(await redis.lrange(list, 0, -1)).toEqual(["envelope"]);
      expect(await redis.exists(`${P}j:${m.id}`)).toBe(0);
      expect(await status(m.rk)).toBe(expected);
      expect(await redis.ttl(m.rk)).toBe(-1);
    }
  });

  it("celery_settle stores each final state, except over a SUCCESS, and settles the lease either way", async () => {
    const fresh = await leased();
    const done = await leased(meta("SUCCESS"));
    const settled = await runScript(redis, "celery_settle", [
      P,
      ...[fresh.id, fresh.token, Q, fresh.rk, meta("FAILURE"), 60, ""],
      ...[done.id, done.token, Q, done.rk, meta("FAILURE"), 60, ""],
    ]);
    expect(settled).toEqual([fresh.id, done.id]);
    expect(await status(fresh.rk)).toBe("FAILURE");
    expect(await status(done.rk)).toBe("SUCCESS");
    expect(await publishedOn(done.rk)).toEqual([]);
    expect(await redis.zscore(`${P}q:${Q}:active`, done.id)).toBeNull();
    expect(await redis.exists(`${P}j:${done.id}`)).toBe(0);
  });
});
