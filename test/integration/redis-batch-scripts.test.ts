/**
 * The batched forms of reserve.lua and settle.lua as the Redis transport sends them: settle's plain
 * records grouped by queue next to full ones, reserve's compact reply across several queues, batches
 * past the chunk size the scripts unpack at once, and the answer to a re-sent compact reserve. Checks
 * the keys each step leaves behind, not only what the transport returns.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { ActivityPublishError } from "../../src/errors.ts";
import { runScript } from "../../src/broker/redis/scripts.ts";
import type { EnqueueItem, Reservation, ReserveRequest, SettleItem, Transport } from "../../src/broker/transport.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { eventLinesOf } from "../support/event-lines.ts";

const uid = () => randomUUID().replaceAll("-", "").slice(0, 12);
const freshQueue = (label = "q") => `batch-${label}-${uid()}`;
const item = (queue: string, extra: Partial<EnqueueItem> = {}): EnqueueItem => {
  const id = `t-${uid()}`;
  return { id, queue, priority: 0, payload: `payload:${id}`, ...extra };
};
const req = (queues: string[], extra: Partial<ReserveRequest> = {}): ReserveRequest => ({
  queues,
  max: 10,
  leaseMs: 30_000,
  workerId: "w-batch",
  waitMs: 0,
  ...extra,
});
const done = (r: Reservation, extra: Partial<SettleItem> = {}): SettleItem => ({
  id: r.id,
  token: r.token,
  queue: r.queue,
  outcome: "SUCCESS",
  resultTtlMs: 60_000,
  ...extra,
});

describe.skipIf(!redisServerAvailable())("redis reserve/settle batches", () => {
  let redis: RedisServerHandle;
  let t: Transport;
  let raw: Redis;

  beforeAll(async () => {
    redis = await startRedisServer();
    t = createRedisTransport(redis.url);
    await t.connect();
    raw = new Redis(redis.url);
  });

  afterAll(async () => {
    raw?.disconnect();
    await t?.close();
    await redis?.cleanup();
  });

  it("reserve across two queues: each lease names its queue, holds a working token, counts its delivery", async () => {
    const q1 = freshQueue("a");
    const q2 = freshQueue("b");
    const a = [item(q1), item(q1)];
    const b = [item(q2), item(q2), item(q2)];
    await t.enqueue([...a, ...b]);
    const got = await t.reserve(req([q1, q2], { max: 4, workerId: "w-two" }));
    expect(got.map((r) => [r.id, r.queue, r.payload, r.deliveries])).toEqual([
      ...a.map((i) => [i.id, q1, i.payload, 1]),
      ...b.slice(0, 2).map((i) => [i.id, q2, i.payload, 1]),
    ]);
    expect(new Set(got.map((r) => r.token)).size).toBe(4);
    expect(new Set(got.map((r) => r.leaseUntil)).size).toBe(1);
    for (const r of got) {
      expect(await raw.hmget(`qw:j:${r.id}`, "t", "w", "d")).toEqual([r.token, "w-two", "1"]);
      expect(Number(await raw.zscore(`qw:q:${r.queue}:active`, r.id))).toBe(r.leaseUntil);
    }
    expect((await raw.smembers("qw:w:w-two:jobs")).sort()).toEqual(got.map((r) => r.id).sort());
    expect(await t.settle(got.map((r) => done(r)))).toEqual(got.map((r) => r.id));
    expect(await raw.scard("qw:w:w-two:jobs")).toBe(0);
    expect(await t.stats([q1, q2])).toEqual([
      { name: q1, ready: 0, delayed: 0, active: 0, dead: 0 },
      { name: q2, ready: 1, delayed: 0, active: 0, dead: 0 },
    ]);
  });

  it("a delivery count that is not a number is counted from 0 instead of failing the batch", async () => {
    const q = freshQueue();
    const [x, y] = [item(q), item(q)];
    await t.enqueue([x!, y!]);
    await raw.hset(`qw:j:${x!.id}`, "d", "garbage");
    const got = await t.reserve(req([q]));
    expect(got.map((r) => [r.id, r.deliveries])).toEqual([
      [x!.id, 1],
      [y!.id, 1],
    ]);
    await t.settle(got.map((r) => done(r)));
  });

  it("one settle mixing plain successes of two queues, results, dead reasons, unique keys, a stale token and a repeated id", async () => {
    const q1 = freshQueue("a");
    const q2 = freshQueue("b");
    const key = `uk-${uid()}`;
    const items = [item(q1), item(q2), item(q1, { uniqueKey: key }), item(q1), item(q2), item(q1), item(q2)];
    await t.enqueue(items);
    const got = await t.reserve(req([q1, q2], { max: 10, workerId: "w-mix" }));
    expect(got).toHaveLength(7);
    const byId = new Map(got.map((r) => [r.id, r]));
    const [plain1, plain2, uniq, withResult, dead, stale, plain3] = items.map((i) => byId.get(i.id)!);
    const batch: SettleItem[] = [
      done(plain1!),
      done(withResult!, { result: '{"state":"SUCCESS"}', resultTtlMs: 0 }),
      done(plain2!),
      // The unique key is released from the task hash even when the caller does not name it.
      done(uniq!),
      done(dead!, { outcome: "FAILURE", result: '{"state":"FAILURE"}', deadReason: "retries exhausted" }),
      done(stale!, { token: "not-the-token" }),
      done(plain3!),
      done(plain1!),
    ];
    expect(await t.settle(batch)).toEqual([plain1!.id, withResult!.id, plain2!.id, uniq!.id, dead!.id, plain3!.id]);

    for (const r of [plain1, plain2, uniq, withResult, plain3]) expect(await raw.exists(`qw:j:${r!.id}`)).toBe(0);
    expect(await raw.hmget(`qw:j:${dead!.id}`, "t", "w", "s", "dr")).toEqual([null, null, null, "retries exhausted"]);
    expect(await raw.zscore(`qw:q:${q2}:dead`, dead!.id)).not.toBeNull();
    expect(await t.getResult(withResult!.id)).toBe('{"state":"SUCCESS"}');
    expect(await raw.pttl(`qw:r:${withResult!.id}`)).toBe(-1);
    expect(await t.getResult(dead!.id)).toBe('{"state":"FAILURE"}');
    expect(await t.getResult(plain1!.id)).toBeNull();
    expect(await raw.exists(`qw:u:${key}`)).toBe(0);
    expect(await raw.smembers("qw:w:w-mix:jobs")).toEqual([stale!.id]);
    expect(await t.stats([q1, q2])).toEqual([
      { name: q1, ready: 0, delayed: 0, active: 1, dead: 0 },
      { name: q2, ready: 0, delayed: 0, active: 0, dead: 1 },
    ]);
    expect(await t.settle([done(stale!)])).toEqual([stale!.id]);
  });

  it("settle of a task leased to another worker removes it from that worker's set", async () => {
    const q = freshQueue();
    await t.enqueue([item(q), item(q)]);
    const [r1] = await t.reserve(req([q], { max: 1, workerId: "w-one" }));
    const [r2] = await t.reserve(req([q], { max: 1, workerId: "w-other" }));
    expect(await t.settle([done(r1!), done(r2!)])).toEqual([r1!.id, r2!.id]);
    expect(await raw.exists("qw:w:w-one:jobs", "qw:w:w-other:jobs")).toBe(0);
  });

  it("batches larger than the scripts' unpack chunk", async () => {
    const q = freshQueue();
    const n = 4_321; // ZADD needs 2 values per task: past Lua's 8000-value unpack limit unless chunked
    const items = Array.from({ length: n }, () => item(q));
    await t.enqueue(items);
    const got = await t.reserve(req([q], { max: n, workerId: "w-big" }));
    expect(got.map((r) => r.id)).toEqual(items.map((i) => i.id));
    expect(new Set(got.map((r) => r.token)).size).toBe(n);
    expect(await raw.zcard(`qw:q:${q}:active`)).toBe(n);
    expect(await raw.scard("qw:w:w-big:jobs")).toBe(n);
    expect(await t.extendLeases(got, 120_000)).toEqual([]);
    expect(Number((await raw.zrange(`qw:q:${q}:active`, 0, 0, "WITHSCORES"))[1])).toBeGreaterThan(got[0]!.leaseUntil + 60_000);
    // Mixed so both the plain group and the full records pass the chunk size.
    const batch = got.map((r, i) => (i % 2 === 0 ? done(r) : done(r, { result: `r${i}` })));
    expect(await t.settle(batch)).toEqual(got.map((r) => r.id));
    expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 0 }]);
    expect(await raw.scard("qw:w:w-big:jobs")).toBe(0);
    expect(await t.getResult(got[1]!.id)).toBe("r1");
  });

  it("a re-sent compact reserve returns the first call's leases as full rows", async () => {
    const q = freshQueue();
    const items = [item(q), item(q), item(q)];
    await t.enqueue(items);
    const args = ["qw:", "w-resend", -2, 30_000, "tokc1.", 60_000, q];
    const first = (await runScript(raw, "reserve", args)) as (string | number)[];
    // Compact: nextDue, now, leaseUntil, then the queue, its count and (id, payload, deliveries) per task.
    expect(first.slice(3)).toEqual([q, 2, items[0]!.id, items[0]!.payload, 1, items[1]!.id, items[1]!.payload, 1]);
    const leaseUntil = first[2];
    const again = (await runScript(raw, "reserve", args)) as (string | number)[];
    expect(again[2]).toBe(-1);
    const rows: (string | number)[][] = [];
    for (let i = 3; i < again.length; i += 6) rows.push(again.slice(i, i + 6));
    expect(rows.sort((x, y) => String(x[0]).localeCompare(String(y[0])))).toEqual(
      [
        [items[0]!.id, q, items[0]!.payload, "tokc1.1", 1, leaseUntil],
        [items[1]!.id, q, items[1]!.payload, "tokc1.2", 1, leaseUntil],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
    expect((await t.stats([q]))[0]).toMatchObject({ ready: 1, active: 2 });
  });

  it("extendLeases over two queues renews held leases and reports lost ones", async () => {
    const q1 = freshQueue("a");
    const q2 = freshQueue("b");
    await t.enqueue([item(q1), item(q2), item(q2)]);
    const got = await t.reserve(req([q1, q2], { leaseMs: 1_000 }));
    expect(got).toHaveLength(3);
    const stale = { ...got[2]!, token: "not-the-token" };
    expect(await t.extendLeases([got[0]!, got[1]!, stale], 60_000)).toEqual([stale.id]);
    expect(Number(await raw.zscore(`qw:q:${q1}:active`, got[0]!.id))).toBeGreaterThan(got[0]!.leaseUntil + 30_000);
    expect(Number(await raw.zscore(`qw:q:${q2}:active`, got[1]!.id))).toBeGreaterThan(got[1]!.leaseUntil + 30_000);
    expect(Number(await raw.zscore(`qw:q:${q2}:active`, got[2]!.id))).toBe(got[2]!.leaseUntil);
    // XX: a lease settled meanwhile is not put back into active.
    await t.settle([done(got[0]!)]);
    expect(await t.extendLeases([got[0]!], 60_000)).toEqual([got[0]!.id]);
    expect(await raw.zscore(`qw:q:${q1}:active`, got[0]!.id)).toBeNull();
    await t.settle(got.slice(1).map((r) => done(r)));
  });

  it("the same settle item twice in one call settles once and is reported once", async () => {
    const q = freshQueue();
    await t.enqueue([item(q), item(q)]);
    const [r1, r2] = await t.reserve(req([q]));
    const again = done(r1!);
    expect(await t.settle([again, done(r2!, { result: "x" }), again])).toEqual([r1!.id, r2!.id]);
    expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 0 }]);
  });

  it("a positive max gets the six-value rows (the Celery consumer reads reserve.lua that way)", async () => {
    const q1 = freshQueue("a");
    const q2 = freshQueue("b");
    const a = item(q1);
    const b = item(q2);
    await t.enqueue([a, b]);
    const out = (await runScript(raw, "reserve", ["qw:", "w-rows", 5, 30_000, "rows1.", 60_000, q1, q2])) as (string | number)[];
    const leaseUntil = out[7];
    expect(out.slice(2)).toEqual([a.id, q1, a.payload, "rows1.1", 1, leaseUntil, b.id, q2, b.payload, "rows1.2", 1, leaseUntil]);
    expect(await t.settle([
      { id: a.id, token: "rows1.1", queue: q1, outcome: "SUCCESS", resultTtlMs: 1 },
      { id: b.id, token: "rows1.2", queue: q2, outcome: "SUCCESS", resultTtlMs: 1 },
    ])).toEqual([a.id, b.id]);
  });

  it("settle refuses a malformed call before changing anything", async () => {
    const q = freshQueue();
    await t.enqueue([item(q)]);
    const [r] = await t.reserve(req([q]));
    await expect(runScript(raw, "settle", ["qw:", "P", q, 2, r!.id, r!.token])).rejects.toThrow(/truncated/);
    await expect(runScript(raw, "settle", ["qw:", "X", r!.id])).rejects.toThrow(/unknown record kind/);
    expect((await t.stats([q]))[0]).toMatchObject({ active: 1 });
    expect(await t.settle([done(r!)])).toEqual([r!.id]);
  });

  it("task events: one stream entry per flush with one `events` field; entries in the old one-field-per-event form still read", async () => {
    const ev = (n: number) => JSON.stringify({ v: 1, type: "task-started", id: `ev-${n}`, task: "x", queue: "q", ts: n, worker: "w" });
    // Written as a worker before 0.2 wrote them.
    await raw.xadd("qw:events", "*", "e", ev(1), "e", ev(2));
    await t.publishActivity!({ events: eventLinesOf([ev(3), ev(4), ev(5)]), eventsMaxLen: 1000, counters: [], countersTtlMs: 60_000 });
    const entries = (await raw.xrange("qw:events", "-", "+")) as [string, string[]][];
    expect(entries).toHaveLength(2);
    expect(entries[1]![1]).toEqual(["events", [ev(3), ev(4), ev(5)].join("\n")]);
    const read = await t.readEvents!(4);
    expect(read.map((e) => (JSON.parse(e.data) as { id: string }).id)).toEqual(["ev-2", "ev-3", "ev-4", "ev-5"]);
    expect(new Set(read.map((e) => e.id)).size).toBe(4);
  });

  it("task events: a failed XADD fails the publish (so the recorder keeps them) while the counters still land, and the error says so", async () => {
    const minute = Math.floor(Date.now() / 60_000);
    await raw.del("qw:events");
    await raw.set("qw:events", "not a stream");
    try {
      const batch = { events: eventLinesOf(['{"v":1}']), eventsMaxLen: 1000, counters: [{ minute, key: "succeeded:fail.test", n: 2 }], countersTtlMs: 60_000 };
      const err = await t.publishActivity!(batch).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ActivityPublishError);
      expect((err as ActivityPublishError).message).toMatch(/cannot record task events: WRONGTYPE/);
      // The recorder re-sends only what did not land (the counters would otherwise count twice).
      expect((err as ActivityPublishError).landed).toEqual({ events: false, counters: true });
      expect(await raw.hget(`qw:m:${minute}`, "succeeded:fail.test")).toBe("2");
    } finally {
      await raw.del("qw:events");
    }
  });

  it("task events: a counter that cannot be incremented fails the publish, but the error says both parts were stored", async () => {
    const minute = Math.floor(Date.now() / 60_000);
    await raw.del("qw:events");
    // A field that is no integer (a minute's key of another kind is set aside instead, redis-worker-keys.test.ts).
    await raw.hset(`qw:m:${minute}`, "succeeded:x", "not a number");
    try {
      const batch = { events: eventLinesOf(['{"v":1,"n":1}']), eventsMaxLen: 1000, counters: [{ minute, key: "succeeded:x", n: 1 }], countersTtlMs: 60_000 };
      const err = await t.publishActivity!(batch).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ActivityPublishError);
      // EXEC ran: sending the counters again would fail again, and the events are on the stream.
      expect((err as ActivityPublishError).landed).toEqual({ events: true, counters: true });
      expect(await raw.xlen("qw:events")).toBe(1);
    } finally {
      await raw.del(`qw:m:${minute}`, "qw:events");
    }
  });
});
