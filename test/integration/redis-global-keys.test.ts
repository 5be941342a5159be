/**
 * A global key (qw:seq, qw:revoked, qw:revoked:terminate, qw:queues, qw:workers, ...) that holds another
 * program's data must not stop every queue: the recovery sweep renames it aside, keeping the bad value, and
 * reports it in one line; reserve and heartbeat go on meanwhile, and send fails before storing anything,
 * naming the key. The first part drives the transport's own calls; the second a real worker process.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { RecoverReport, Transport, WorkerInfo } from "../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { configSchema } from "../../src/config/schema.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { enqueueNumbered } from "../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../support/fault-worker.ts";
import { usePrefixPairs } from "../support/redis-prefix-pairs.ts";
import { redisServerAvailable } from "../support/redis-server.ts";

const fx = usePrefixPairs("gk");
const pair = () => fx.pair();

const item = (id: string, opts: { queue?: string; priority?: number; countdown?: number } = {}) =>
  buildEnqueueItem("demo.add", [1, 2], { id, ...opts }, { queue: "a", maxPayloadBytes: 1 << 20 });

const recoverOnce = (t: Transport): Promise<RecoverReport> => t.recover({ maxDeliveries: 5, heartbeatTtlMs: 10_000, deadMax: 1000, deadTtlMs: 0 });
const reserveAll = async (t: Transport, queues = ["a"]) =>
  (await t.reserve({ queues, max: 100, leaseMs: 30_000, workerId: "w1", waitMs: 0 })).map((r) => r.id);
const info = (id: string, queues: string[]): WorkerInfo => ({
  id,
  host: "h",
  pid: 1,
  concurrency: 1,
  pool: "async",
  queues,
  startedAt: 0,
  lastBeat: 0,
  processed: 0,
  failed: 0,
  active: 0,
  version: "test",
});

/** The one report line about `key`, and the key it was renamed to (which must still hold the bad value). */
function reportAbout(rep: RecoverReport, key: string): { line: string; aside: string } {
  const lines = (rep.poisoned ?? []).filter((l) => l.startsWith(`${key} held `));
  expect(lines, JSON.stringify(rep.poisoned)).toHaveLength(1);
  const aside = / renamed to (\S+) /.exec(lines[0]!)![1]!;
  expect(aside.startsWith(`${key}:poisoned:`)).toBe(true);
  return { line: lines[0]!, aside };
}

describe.skipIf(!redisServerAvailable())("global keys of another kind, transport calls", () => {
  it("qw:seq not an integer: send fails naming it and stores nothing; reserve still leases; recover goes on above every queued sequence", async () => {
    const { p, t, cli } = await pair();
    // Sequences 1..4 in send order per queue: a1, a2, h1 on a (h1 first by priority), z1 on z.
    await t.enqueue([item("a1"), item("a2"), item("h1", { priority: 9 }), item("z1", { queue: "z" }), item("zd", { queue: "z", countdown: 0.05 })]);
    await fx.raw.set(`${p}seq`, "abc");
    await new Promise((r) => setTimeout(r, 100)); // zd is due

    await expect(cli.enqueue([item("c1")])).rejects.toThrow(new RegExp(`^Redis at \\S+: ${p}seq holds the string "abc", not the integer counter .*start one if none runs`));
    expect(await fx.raw.exists(`${p}j:c1`)).toBe(0);

    // Ready tasks are leased while the counter is bad; the due delayed one waits for the repair.
    expect(await reserveAll(t, ["z"])).toEqual(["z1"]);
    expect(await fx.raw.zscore(`${p}q:z:delayed`, "zd")).not.toBeNull();

    // The highest sequence still queued is h1's 3 (z1 left ready when it was leased).
    const { line, aside } = reportAbout(await recoverOnce(t), `${p}seq`);
    expect(line).toContain('held the string "abc", not an integer');
    expect(line).toMatch(/goes on from 3, above every queued task/);
    expect(await fx.raw.get(aside)).toBe("abc");
    expect(await fx.raw.get(`${p}seq`)).toBe("4"); // 3, then zd's promotion in the same sweep

    // Sent after the repair, so it comes after every task sent before it.
    await t.enqueue([item("c1")]);
    expect(await reserveAll(t)).toEqual(["h1", "a1", "a2", "c1"]);
    expect(await reserveAll(t, ["z"])).toEqual(["zd"]);
    // Reported once.
    expect((await recoverOnce(t)).poisoned ?? []).toEqual([]);
  });

  it("qw:revoked of another type: reserve leases nothing meanwhile; recover sets it aside and says the revokes are lost and how to re-issue them", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("r1")]);
    await fx.raw.set(`${p}revoked`, "x");
    expect(await reserveAll(t)).toEqual([]);
    const { line, aside } = reportAbout(await recoverOnce(t), `${p}revoked`);
    expect(line).toMatch(/held the string "x", not a sorted set; .*revokes stored there are lost.*qworker revoke/);
    expect(await fx.raw.get(aside)).toBe("x");
    expect(await reserveAll(t)).toEqual(["r1"]);
    // Revokes work again.
    await t.enqueue([item("r2")]);
    await t.revoke(["r2"], 60_000, false);
    await t.enqueue([item("r2")]);
    expect(await reserveAll(t)).toEqual([]);
  });

  it("qw:revoked:terminate of another type: a terminating revoke is refused naming the fix; recover sets it aside, says what is lost, and terminating revokes work again", async () => {
    const { p, t, cli } = await pair();
    await t.revoke(["plain"], 60_000, false);
    await fx.raw.set(`${p}revoked:terminate`, "x");
    await expect(cli.revoke(["k1"], 60_000, true)).rejects.toThrow(
      new RegExp(`: ${p}revoked:terminate holds a string, not the sorted set of terminating revokes: a running worker sets it aside within a second \\(start one if none runs\\), then revoke again$`),
    );
    expect(await fx.raw.zscore(`${p}revoked`, "k1")).toBeNull();

    const { line, aside } = reportAbout(await recoverOnce(t), `${p}revoked:terminate`);
    expect(line).toMatch(/held the string "x", not a sorted set; .*still hold.*qworker revoke --terminate/);
    expect(await fx.raw.get(aside)).toBe("x");
    // The revokes themselves were never in that key.
    expect(await fx.raw.zscore(`${p}revoked`, "plain")).not.toBeNull();
    await cli.revoke(["k1"], 60_000, true);
    expect(await fx.raw.zscore(`${p}revoked:terminate`, "k1")).not.toBeNull();
    expect((await recoverOnce(t)).poisoned ?? []).toEqual([]);
  });

  it("qw:queues of another type: send and stats fail naming it; recover sets it aside and lists the live workers' queues again", async () => {
    const { p, t, cli } = await pair();
    await t.enqueue([item("q1", { queue: "b" })]);
    await t.heartbeat(info("w9", ["b", "c"]), 10_000);
    await fx.raw.del(`${p}queues`);
    await fx.raw.set(`${p}queues`, "x");

    await expect(cli.enqueue([item("q2", { queue: "b" })])).rejects.toThrow(new RegExp(`: ${p}queues holds the string "x", not the set of queue names: a running worker sets it aside`));
    expect(await fx.raw.exists(`${p}j:q2`)).toBe(0);
    await expect(cli.stats()).rejects.toThrow(new RegExp(`holds a key of the wrong type at ${p}queues, .*a running worker sets it aside`));

    const { line, aside } = reportAbout(await recoverOnce(t), `${p}queues`);
    expect(line).toMatch(/not a set; .*the queues live workers consume/);
    expect(await fx.raw.get(aside)).toBe("x");
    expect((await fx.raw.smembers(`${p}queues`)).sort()).toEqual(["b", "c"]);
    await cli.enqueue([item("q2", { queue: "b" })]);
    expect((await cli.stats()).map((s) => [s.name, s.ready])).toEqual([["b", 2], ["c", 0]]);
  });

  it("qw:workers of another type: heartbeats do not fail; recover sets it aside and the next beat lists the worker", async () => {
    const { p, t, cli } = await pair();
    await fx.raw.set(`${p}workers`, "x");
    await t.heartbeat(info("w1", ["a"]), 10_000);
    await expect(cli.workers()).rejects.toThrow(new RegExp(`at ${p}workers, .*a running worker sets it aside`));
    const { aside } = reportAbout(await recoverOnce(t), `${p}workers`);
    expect(await fx.raw.get(aside)).toBe("x");
    await t.heartbeat(info("w1", ["a"]), 10_000);
    expect((await cli.workers()).map((w) => w.id)).toEqual(["w1"]);
  });

  it("the report list, the event stream and the sweep's own timing keys are set aside too", async () => {
    const { p, t } = await pair();
    await fx.raw.set(`${p}poisoned`, "x");
    await fx.raw.sadd(`${p}events`, "x");
    await fx.raw.lpush(`${p}recover:last`, "x");
    const rep = await recoverOnce(t);
    for (const k of ["poisoned", "events", "recover:last"]) reportAbout(rep, `${p}${k}`);
    expect((await recoverOnce(t)).poisoned ?? []).toEqual([]);
  });
});

describe.skipIf(!redisServerAvailable())("a key no sweep repairs", () => {
  it("is logged as the broker refusing a call, once, not as the broker being unreachable", async () => {
    const { p } = await pair();
    // The scripts a worker runs all get past a key of another kind by now (redis-worker-keys.test.ts), so a
    // stand-in reserve meets Redis's own refusal: it reads a list as a string.
    await fx.raw.rpush(`${p}not-a-string`, "x");
    const url = fx.redis.url;
    const config = { ...configSchema.parse({ broker_url: url, redis_prefix: p }), broker_url: url };
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
    const transport = createRedisTransport(url, { prefix: p });
    await transport.connect();
    transport.reserve = () => fx.raw.get(`${p}not-a-string`).then(() => []);
    const worker = new Worker({ transport, registry: new TaskRegistry(), config, logger, id: "wk1" });
    const downs: unknown[] = [];
    worker.events.on("broker:down", (err) => downs.push(err));
    await worker.start();
    try {
      await new Promise((r) => setTimeout(r, 1500)); // several reserves, one every 250 ms
    } finally {
      await worker.stop();
      await transport.close();
    }
    const msgs = lines.map((l) => l.msg);
    expect(msgs.filter((m) => m.startsWith("broker refused a call (WRONGTYPE"))).toHaveLength(1);
    expect(msgs.filter((m) => /unreachable|reachable again/.test(m))).toEqual([]);
    expect(downs).toEqual([]);
  });
});

describe.skipIf(!redisServerAvailable())("global keys of another kind, a real worker", () => {
  let w: WorkerProcess;
  let t: Transport;
  const out = makeOutDir();

  beforeAll(async () => {
    t = createRedisTransport(fx.redis.url);
    fx.track(t);
    await t.connect();
    w = spawnWorker({ broker: fx.redis.url, outDir: out.dir, concurrency: 2, queues: ["g1", "g2"] });
    await enqueueNumbered(t, ["warmup"], { queue: "g1" });
    await waitUntil("the worker to start", 60_000, () => recorded(out.dir).includes("warmup"));
  }, 90_000);

  afterAll(async () => {
    if (process.env.FAULT_DEBUG) console.log(w?.stderr());
    await w?.kill9();
    out.cleanup();
  });

  const errorLines = () => w.logs().filter((l) => l.levelName === "error").map((l) => l.msg ?? "");

  // One key after another, on the same worker: each must leave it consuming.
  it.each([
    ["seq", "abc"],
    ["revoked", "x"],
    ["queues", "x"],
    ["workers", "x"],
  ])("qw:%s set to a string: the worker sets it aside, logs it once and runs tasks on both queues again", async (name, value) => {
    const key = `qw:${name}`;
    // A delayed task falls due about when the key goes bad (the reported case for qw:seq).
    await t.enqueue([buildEnqueueItem("faults.record", [`${name}-early`, 5], { id: `t-${name}-early`, countdown: 0.3 }, { queue: "g2", maxPayloadBytes: 1 << 20 })]);
    await fx.raw.del(key);
    await fx.raw.set(key, value);
    const since = Date.now();
    let asides: string[] = [];
    await waitUntil(`${key} to be set aside`, 5000, async () => (asides = await fx.raw.keys(`${key}:poisoned:*`)).length > 0);
    expect(asides).toHaveLength(1);
    expect(await fx.raw.get(asides[0]!)).toBe(value);

    await enqueueNumbered(t, [`${name}-g1`], { queue: "g1" });
    await enqueueNumbered(t, [`${name}-g2`], { queue: "g2" });
    await waitUntil(`tasks to run after ${key} was set aside`, 5000, () =>
      [`${name}-early`, `${name}-g1`, `${name}-g2`].every((id) => recorded(out.dir).includes(id)),
    );
    expect(Date.now() - since).toBeLessThan(8000);

    const about = errorLines().filter((m) => m.startsWith(`${key} held `));
    expect(about).toHaveLength(1);
    expect(about[0]).toContain(`the string "${value}"`);
    expect(w.stderr()).not.toMatch(/broker unreachable|not answering|lease keeper: broker call failed/);
  });
});
