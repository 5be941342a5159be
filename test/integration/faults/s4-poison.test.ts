/**
 * S4: bad tasks and bad data never take a worker down. A task that throws is retried exactly as configured
 * and then dead-lettered; a task that hangs gets its slot back at its hard time limit; entries written
 * straight into qworker's Redis keys (not JSON, wrong shape, wrong Redis type, oversized) are dead-lettered
 * within a second with a precise reason, logged once, while the worker goes on with real work (so is one
 * nested deeper than a worker can write back); a 10 MiB payload runs under the default limit and is
 * refused at send under a smaller one.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../../src/client/build-message.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

let redis: RedisServerHandle;
let t: Transport;
let raw: Redis;
let w: WorkerProcess;
const out = makeOutDir();
const MiB = 1024 * 1024;

beforeAll(async () => {
  redis = await startRedisServer({ appendonly: true });
  t = createRedisTransport(redis.url);
  await t.connect();
  raw = new Redis(redis.url);
  w = spawnWorker({
    broker: redis.url,
    outDir: out.dir,
    concurrency: 2,
    queues: ["s4", "s4b"],
    env: { QWORKER_MAX_PAYLOAD_BYTES: String(12 * MiB) },
  });
  // Started and consuming: one real task has run.
  await enqueueNumbered(t, ["warmup"], { queue: "s4" });
  await waitUntil("the worker to start", 60_000, () => recorded(out.dir).includes("warmup"));
});

afterAll(async () => {
  if (process.env.FAULT_DEBUG) console.log(w?.stderr());
  await w?.kill9();
  raw?.disconnect();
  await t?.close();
  await redis?.cleanup();
  out.cleanup();
});

/** Put an id on a queue the way enqueue.lua does, but with whatever data we like behind it. */
async function inject(queue: string, id: string, data: (key: string) => Promise<unknown>) {
  await raw.sadd("qw:queues", queue);
  await data(`qw:j:${id}`);
  await raw.zadd(`qw:q:${queue}:ready`, 9e14, id);
  await raw.lpush(`qw:q:${queue}:wake`, "1");
}

const deadReason = async (queue: string, id: string) => (await t.listDead(queue)).find((d) => d.id === id)?.reason;

describe.skipIf(!redisServerAvailable())("S4: poisoned input and misbehaving tasks", () => {
  it("malformed entries are dead-lettered within a second with a precise reason; the worker keeps working", async () => {
    await inject("s4", "p-notjson", (k) => raw.hset(k, { p: "{not json", q: "s4", pr: 0, d: 0 }));
    await inject("s4", "p-shape", (k) => raw.hset(k, { p: JSON.stringify({ v: 1, id: "p-shape", task: 7 }), q: "s4", pr: 0, d: 0 }));
    await inject("s4", "p-string", (k) => raw.set(k, "a string where a hash belongs"));
    await inject("s4", "p-big", (k) => raw.hset(k, { p: "x".repeat(13 * MiB), q: "s4", pr: 0, d: 0 }));
    const [sec, usec] = await raw.time();
    const injectedAt = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    await waitUntil("four dead-letter entries", 10_000, async () => (await t.listDead("s4")).length === 4);
    // Broker-clock delay from injection to dead-letter: within a second; the 13 MiB entry also has to
    // travel to the worker, which on a loaded 2-core CI box can take longer.
    for (const d of await t.listDead("s4")) expect(d.deadAt - injectedAt).toBeLessThan(d.id === "p-big" ? 3000 : 1000);
    expect(await deadReason("s4", "p-notjson")).toMatch(/not valid JSON/);
    expect(await deadReason("s4", "p-shape")).toMatch(/task/);
    expect(await deadReason("s4", "p-string")).toMatch(/WRONGTYPE|unreadable/);
    expect(await deadReason("s4", "p-big")).toMatch(/max_payload_bytes/);

    // Still consuming.
    await enqueueNumbered(t, ["after-poison"], { queue: "s4" });
    await waitUntil("a real task after the poison", 5000, () => recorded(out.dir).includes("after-poison"));
    expect(w.proc.exitCode).toBeNull();
  }, 30_000);

  it("a payload nested deeper than a worker can write back is dead-lettered at once, not retried for ever", async () => {
    // JSON.parse reads it; JSON.stringify cannot write it back. The task failed on it, its retry could
    // not be encoded, and it was handed back and run again every 250 ms, never dead-lettered.
    const args = "[" + "[".repeat(20_000) + "]".repeat(20_000) + "]";
    const payload = `{"v":1,"id":"p-deep","task":"faults.record","args":${args},"kwargs":{},"queue":"s4","priority":0,"retries":0,"sentAt":1}`;
    await inject("s4", "p-deep", (k) => raw.hset(k, { p: payload, q: "s4", pr: 0, d: 0 }));
    await waitUntil("the deep payload to be dead-lettered", 5000, async () => (await deadReason("s4", "p-deep")) !== undefined);
    expect(await deadReason("s4", "p-deep")).toBe('undecodable message: payload "args" nests deeper than 512 levels, more than a worker can write back');
    await enqueueNumbered(t, ["after-deep"], { queue: "s4" });
    await waitUntil("a real task after the deep payload", 5000, () => recorded(out.dir).includes("after-deep"));
    expect(w.proc.exitCode).toBeNull();
  }, 30_000);

  it("a wrong Redis type at a queue's ready key is set aside and dead-lettered; other queues keep running", async () => {
    await raw.sadd("qw:queues", "s4b");
    await raw.rpush("qw:q:s4b:ready", "junk-1", "junk-2");
    const [sec, usec] = await raw.time();
    const injectedAt = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    await waitUntil("the bad key to be reported", 5000, async () => (await t.listDead("s4b")).length === 1);
    const [entry] = await t.listDead("s4b");
    // Found by the recovery sweep, which runs once a second on the worker's 250 ms tick: up to 1.25 s
    // after an injection that just missed one (1,027 ms was seen on a loaded CI box).
    expect(entry!.deadAt - injectedAt).toBeLessThan(1500);
    expect(entry!.reason).toMatch(/qw:q:s4b:ready .*list.*zset/);
    expect(await raw.type("qw:q:s4b:ready")).not.toBe("list");
    await enqueueNumbered(t, ["s4b-ok"], { queue: "s4b" });
    await enqueueNumbered(t, ["s4-ok"], { queue: "s4" });
    await waitUntil("both queues to run again", 5000, () => ["s4b-ok", "s4-ok"].every((id) => recorded(out.dir).includes(id)));
  }, 30_000);

  it("a throwing task runs exactly 1 + retry.max times, then is dead-lettered with its error", async () => {
    await enqueueNumbered(t, ["flaky-1"], { queue: "s4", task: "faults.flaky" });
    await waitUntil("the failure to be dead-lettered", 10_000, async () => (await deadReason("s4", "t-flaky-1")) !== undefined);
    expect(recorded(out.dir, "attempt").sort()).toEqual(["flaky-1 0", "flaky-1 1", "flaky-1 2"]);
    expect(await deadReason("s4", "t-flaky-1")).toMatch(/failed after 2 retries: flaky flaky-1 failed on purpose/);
  }, 30_000);

  it("hanging tasks give their slots back at the hard time limit", async () => {
    await enqueueNumbered(t, ["hang-1", "hang-2"], { queue: "s4", task: "faults.hang" });
    await waitUntil("both hangs to start", 10_000, () => recorded(out.dir, "hang").length === 2);
    const ids = numbered("after-hang-", 5);
    await enqueueNumbered(t, ids, { queue: "s4" });
    // Concurrency is 2 and both slots are hung: these can only run once the 1 s limit frees them.
    await waitUntil("work to run after the hangs", 10_000, () => ids.every((id) => recorded(out.dir).includes(id)));
  }, 30_000);

  it("a 10 MiB payload runs under the default limit and is refused at send under a smaller one", async () => {
    const data = "y".repeat(10 * MiB);
    const item = buildEnqueueItem("faults.big", ["big-1", data], {}, { queue: "s4", maxPayloadBytes: 16 * MiB });
    await t.enqueue([item]);
    await waitUntil("the big task to run", 20_000, () => recorded(out.dir).includes(`big-1 ${10 * MiB}`));
    expect(() => buildEnqueueItem("faults.big", ["big-2", data], {}, { queue: "s4", maxPayloadBytes: MiB })).toThrow(
      /over max_payload_bytes \(1048576\).*raise max_payload_bytes/,
    );
  }, 40_000);

  it("each poisoned entry was logged once, and the worker is still alive", async () => {
    const errors = w.logs().filter((l) => l.levelName === "error").map((l) => l.msg ?? "");
    for (const id of ["p-notjson", "p-shape", "p-big", "p-deep"]) expect(errors.filter((m) => m.includes(id))).toHaveLength(1);
    expect(errors.filter((m) => m.includes("qw:q:s4b:ready"))).toHaveLength(1);
    expect(errors.filter((m) => m.includes("p-string"))).toHaveLength(1);
    expect(w.proc.exitCode).toBeNull();
  });
});
