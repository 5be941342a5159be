/**
 * Nothing is lost when one of qworker's per-queue or per-worker keys holds another program's data.
 * - A send that names a queue whose ready, delayed or wake key is of another kind is refused before any
 *   task is stored (a script that fails part-way keeps what it wrote: a task stored but never queued never
 *   runs and answers every later send of its id as a duplicate), naming the key and the fix.
 * - A worker's set of leases (w:<id>:jobs), its re-send marker (w:<id>:last) and a minute's counters
 *   (m:<minute>) of another kind are set aside by the call that finds them, reported in one line, and the
 *   work goes on: before, every reserve, settle, lease renewal or sweep that touched them failed until a
 *   person deleted the key, and a settle that failed part-way left its task in no set at all.
 * - A task's own keys (j:<id>, u:<unique key>) of another kind are set aside by the send that meets them,
 *   which stores every task of the batch: before, it failed part-way, with the tasks before it stored.
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { RecoverReport, Reservation, Transport } from "../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { configSchema } from "../../src/config/schema.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { waitFor } from "../e2e/helpers.ts";
import { usePrefixPairs } from "../support/redis-prefix-pairs.ts";
import { redisServerAvailable } from "../support/redis-server.ts";

const fx = usePrefixPairs("wk");
const pair = () => fx.pair();

const item = (id: string, opts: { queue?: string; countdown?: number } = {}) =>
  buildEnqueueItem("demo.add", [1, 2], { id, ...opts }, { queue: "a", maxPayloadBytes: 1 << 20 });
const recoverOnce = (t: Transport): Promise<RecoverReport> => t.recover({ maxDeliveries: 5, heartbeatTtlMs: 10_000, deadMax: 1000, deadTtlMs: 0 });
const reserve = (t: Transport, leaseMs = 30_000): Promise<Reservation[]> => t.reserve({ queues: ["a"], max: 100, leaseMs, workerId: "w1", waitMs: 0 });
const settleAll = (t: Transport, got: Reservation[]) =>
  t.settle(got.map((r) => ({ id: r.id, token: r.token, queue: r.queue, outcome: "SUCCESS" as const, result: `{"r":"${r.id}"}`, resultTtlMs: 60_000 })));

/** Replace `key` with a string: another program's data. */
async function spoil(key: string, value = "x"): Promise<void> {
  await fx.raw.del(key);
  await fx.raw.set(key, value);
}

/** The one report line about `key` (here or already in the report list), and where the bad value went. */
function reportAbout(lines: string[], key: string): { line: string; aside: string } {
  const about = lines.filter((l) => l.startsWith(`${key} held `));
  expect(about, JSON.stringify(lines)).toHaveLength(1);
  const aside = / renamed to (\S+) /.exec(about[0]!)![1]!;
  expect(aside.startsWith(`${key}:poisoned:`)).toBe(true);
  return { line: about[0]!, aside };
}

describe.skipIf(!redisServerAvailable())("a queue key of another kind: the send is refused whole", () => {
  it.each([
    ["ready", "the sorted set of the queue's ready tasks", {}],
    ["delayed", "the sorted set of the queue's delayed tasks", { countdown: 60 }],
    ["wake", "the list that wakes the queue's consumers", {}],
  ])("q:a:%s a string: nothing is stored, the error names the key and the fix; after the sweep the send goes through", async (suffix, want, opts) => {
    const { p, t, cli } = await pair();
    const key = `${p}q:a:${suffix}`;
    await spoil(key);
    // A task for a good queue first: before, it and the bad queue's task were stored, and only the bad
    // queue's write failed, leaving both stored but never queued.
    const batch = [item("b1", { queue: "b" }), item("a1", opts), item("a2", opts)];
    const refused = await cli.enqueue(batch).then(
      () => new Error("not refused"),
      (e: Error) => e,
    );
    for (const id of ["b1", "a1", "a2"]) expect(await fx.raw.exists(`${p}j:${id}`), `j:${id} stored`).toBe(0);
    expect(await fx.raw.zcard(`${p}q:b:ready`)).toBe(0);
    expect(refused.message).toMatch(
      new RegExp(`^Redis at \\S+: ${key} holds the string "x", not ${want}: a running worker sets it aside within a second \\(start one if none runs\\), then send again$`),
    );
    // The worker's transport gets it too (a data error, not an outage).
    const err = await t.enqueue(batch).catch((e: unknown) => e);
    expect(t.isDataError?.(err)).toBe(true);

    // The fix the error names: the sweep sets the key aside, and the same send then queues every task.
    const { aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], key);
    expect(await fx.raw.get(aside)).toBe("x");
    expect((await cli.enqueue(batch)).map((r) => r.duplicate)).toEqual([false, false, false]);
    expect(await fx.raw.zcard(`${p}q:b:ready`)).toBe(1);
    expect(await fx.raw.zcard(`${p}q:a:${suffix === "delayed" ? "delayed" : "ready"}`)).toBe(2);
  });

  it("a queue nothing was sent to yet: the refusal lists the queue, so the sweep finds its key", async () => {
    const { p, t, cli } = await pair();
    await fx.raw.rpush(`${p}q:fresh:ready`, "x");
    await expect(cli.enqueue([item("f1", { queue: "fresh" })])).rejects.toThrow(new RegExp(`${p}q:fresh:ready holds a list, not the sorted set`));
    expect(await fx.raw.exists(`${p}j:f1`)).toBe(0);
    reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}q:fresh:ready`);
    await cli.enqueue([item("f1", { queue: "fresh" })]);
    expect(await fx.raw.zrange(`${p}q:fresh:ready`, 0, -1)).toEqual(["f1"]);
  });
});

describe.skipIf(!redisServerAvailable())("a task's own keys of another kind at send: set aside, and every task is stored", () => {
  it("j:<id> and u:<key> of another kind in the middle of a batch: no error part-way, each key set aside once and reported", async () => {
    const { p, t, cli } = await pair();
    await spoil(`${p}j:a2`, "not a task");
    await fx.raw.rpush(`${p}u:k1`, "x");
    // Before, the batch failed at a2 with Redis's WRONGTYPE while a1 was already stored: a re-send could
    // not tell which tasks had landed.
    const batch = [
      item("a1"),
      item("a2"),
      buildEnqueueItem("demo.add", [1, 2], { id: "a3", uniqueKey: "k1" }, { queue: "a", maxPayloadBytes: 1 << 20 }),
      buildEnqueueItem("demo.add", [1, 2], { id: "a4", uniqueKey: "k1" }, { queue: "a", maxPayloadBytes: 1 << 20 }),
    ];
    expect(await cli.enqueue(batch)).toEqual([
      { id: "a1", duplicate: false },
      { id: "a2", duplicate: false },
      { id: "a3", duplicate: false },
      { id: "a3", duplicate: true },
    ]);
    expect(await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).toEqual(["a1", "a2", "a3"]);
    expect(await fx.raw.hget(`${p}j:a2`, "q")).toBe("a");
    expect(await fx.raw.get(`${p}u:k1`)).toBe("a3");

    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(2);
    const job = reportAbout(lines, `${p}j:a2`);
    expect(job.line).toContain('held the string "not a task", not a hash');
    expect(job.line).toContain("task a2, sent now, was stored in its place");
    expect(await fx.raw.get(job.aside)).toBe("not a task");
    const uniq = reportAbout(lines, `${p}u:k1`);
    expect(uniq.line).toContain("held a list, not a string");
    expect(await fx.raw.lrange(uniq.aside, 0, -1)).toEqual(["x"]);

    // The stored tasks run as any other: a re-send is a duplicate, not a second copy.
    expect((await cli.enqueue(batch)).map((r) => r.duplicate)).toEqual([true, true, true, true]);
    expect((await reserve(t)).map((r) => r.id)).toEqual(["a1", "a2", "a3"]);
  });
});

describe.skipIf(!redisServerAvailable())("set-aside names", () => {
  /**
   * Plant `<key>:poisoned:<ms>` for every millisecond around now, as if the key had been set aside in each:
   * the next set-aside of `key` then meets a taken name whatever millisecond it runs in (before, RENAME
   * overwrote the earlier bad value there).
   */
  async function takeEveryName(key: string): Promise<number> {
    const [sec, usec] = await fx.raw.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const names: string[] = [];
    for (let ms = now - 1000; ms <= now + 10_000; ms++) names.push(`${key}:poisoned:${ms}`, "earlier");
    await fx.raw.mset(...names);
    return names.length / 2;
  }

  it.each([
    ["u:k1", "a send (lib/bad_key.lua)"],
    ["q:a:ready", "the recovery sweep (recover.lua)"],
  ])("%s set aside by %s in a millisecond whose name is taken: a new name, the earlier value kept", async (suffix) => {
    const { p, t, cli } = await pair();
    const key = `${p}${suffix}`;
    const planted = await takeEveryName(key);
    await fx.raw.sadd(`${p}queues`, "a");
    await fx.raw.rpush(key, "bad");
    if (suffix.startsWith("u:")) {
      await cli.enqueue([buildEnqueueItem("demo.add", [1, 2], { id: "u1", uniqueKey: "k1" }, { queue: "a", maxPayloadBytes: 1 << 20 })]);
    }
    const { aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], key);
    expect(aside).toMatch(new RegExp(`^${key}:poisoned:\\d+-2$`));
    expect(await fx.raw.lrange(aside, 0, -1)).toEqual(["bad"]);
    const names = await fx.raw.keys(`${key}:poisoned:*`);
    expect(names).toHaveLength(planted + 1);
    const earlier = await fx.raw.mget(...names.filter((k) => k !== aside));
    expect(earlier.filter((v) => v !== "earlier")).toEqual([]);
  });
});

describe.skipIf(!redisServerAvailable())("a worker's keys of another kind are set aside and the work goes on", () => {
  it("w:<id>:jobs at reserve: the tasks are leased and recorded as the worker's", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2")]);
    await spoil(`${p}w:w1:jobs`);
    expect((await reserve(t)).map((r) => r.id)).toEqual(["a1", "a2"]);
    expect((await fx.raw.smembers(`${p}w:w1:jobs`)).sort()).toEqual(["a1", "a2"]);
    const { line, aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}w:w1:jobs`);
    expect(line).toContain('held the string "x", not a set');
    expect(line).toContain("listed again from the active tasks (2 found)");
    expect(await fx.raw.get(aside)).toBe("x");
  });

  it("w:<id>:jobs while tasks are leased: renewal lists them again and renews them; settle and recovery work", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2"), item("a3")]);
    const got = await reserve(t);
    await spoil(`${p}w:w1:jobs`);
    expect((await t.extendWorkerLeases("w1", 60_000)).sort()).toEqual(["a1", "a2", "a3"]);
    reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}w:w1:jobs`);

    // Settle with the set bad again: before, the tasks left their active set, then the script failed, so
    // they were neither finished nor ever recovered.
    await spoil(`${p}w:w1:jobs`);
    expect(await settleAll(t, got.slice(0, 1))).toEqual(["a1"]);
    expect(await fx.raw.exists(`${p}j:a1`)).toBe(0);
    expect(await fx.raw.get(`${p}r:a1`)).toBe('{"r":"a1"}');
    expect((await fx.raw.smembers(`${p}w:w1:jobs`)).sort()).toEqual(["a2", "a3"]);

    // Release, then an expired lease swept back with the set bad each time.
    await spoil(`${p}w:w1:jobs`);
    await t.release([got[1]!]);
    expect(await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).toEqual(["a2"]);
    expect(await t.extendWorkerLeases("w1", 1)).toEqual(["a3"]);
    await spoil(`${p}w:w1:jobs`);
    await new Promise((r) => setTimeout(r, 20));
    const rep = await recoverOnce(t);
    expect(rep.recovered).toBe(1);
    expect(rep.poisoned ?? []).toHaveLength(3);
    expect((await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).sort()).toEqual(["a2", "a3"]);
    expect(await fx.raw.smembers(`${p}w:w1:jobs`)).toEqual([]);
  });

  it("w:<id>:jobs at retry and dead-letter: the task moves on, the set is listed again", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2"), item("a3")]);
    const got = await reserve(t);
    await spoil(`${p}w:w1:jobs`);
    const r = got[0]!;
    expect(await t.retry({ id: r.id, token: r.token, queue: r.queue, priority: 0, payload: r.payload, dueAt: 0 })).toBe(true);
    await spoil(`${p}w:w1:jobs`);
    await t.deadLetter([{ id: got[1]!.id, token: got[1]!.token, queue: "a", reason: "test" }]);
    expect(await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).toEqual(["a1"]);
    expect(await fx.raw.zrange(`${p}q:a:dead`, 0, -1)).toEqual(["a2"]);
    expect(await fx.raw.smembers(`${p}w:w1:jobs`)).toEqual(["a3"]);
    expect((await recoverOnce(t)).poisoned ?? []).toHaveLength(2);
  });

  it("w:<id>:last at reserve: set aside, the call leases as a new one", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1")]);
    await fx.raw.rpush(`${p}w:w1:last`, "x");
    expect((await reserve(t)).map((r) => r.id)).toEqual(["a1"]);
    const { line, aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}w:w1:last`);
    expect(line).toContain("held a list, not a string");
    expect(await fx.raw.lrange(aside, 0, -1)).toEqual(["x"]);
  });

  it("m:<minute> (a minute's counters): set aside, and the counts still land, once", async () => {
    const { p, t } = await pair();
    const minute = Math.floor(Date.now() / 60_000);
    await t.publishActivity!({ events: { data: Buffer.alloc(0), count: 0 }, eventsMaxLen: 100, counters: [{ minute, key: "succeeded:demo.add", n: 1 }], countersTtlMs: 60_000 });
    await spoil(`${p}m:${minute}`, "old");
    await t.publishActivity!({
      events: { data: Buffer.alloc(0), count: 0 },
      eventsMaxLen: 100,
      counters: [
        { minute, key: "succeeded:demo.add", n: 2 },
        { minute, key: "failed:demo.add", n: 1 },
        { minute: minute - 1, key: "succeeded:demo.add", n: 5 },
      ],
      countersTtlMs: 60_000,
    });
    expect(await fx.raw.hgetall(`${p}m:${minute}`)).toEqual({ "succeeded:demo.add": "2", "failed:demo.add": "1" });
    expect(await fx.raw.hgetall(`${p}m:${minute - 1}`)).toEqual({ "succeeded:demo.add": "5" });
    expect(await fx.raw.pttl(`${p}m:${minute}`)).toBeGreaterThan(0);
    const { line, aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}m:${minute}`);
    expect(line).toContain('held the string "old", not a hash');
    expect(await fx.raw.get(aside)).toBe("old");
  });
});

describe.skipIf(!redisServerAvailable())("a real worker whose own keys hold another program's data", () => {
  it("runs its tasks, logs each key once as set aside, and never that the broker refused a call", async () => {
    const { p, t } = await pair();
    await fx.raw.rpush(`${p}w:wk1:last`, "x");
    await fx.raw.set(`${p}w:wk1:jobs`, "x");
    const url = fx.redis.url;
    const config = { ...configSchema.parse({ broker_url: url, redis_prefix: p, queues: ["a"] }), broker_url: url };
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
    const registry = new TaskRegistry();
    registry.register("demo.add", defineTask("demo.add", (a: number, b: number) => a + b) as never, "test");
    const transport = createRedisTransport(url, { prefix: p });
    await transport.connect();
    const worker = new Worker({ transport, registry, config, logger, id: "wk1" });
    await worker.start();
    try {
      await t.enqueue([item("r1"), item("r2")]);
      await waitFor("both tasks to finish", async () => ((await fx.raw.exists(`${p}r:r1`, `${p}r:r2`)) === 2 ? true : undefined), 5000);
      const msgs = () => lines.map((l) => l.msg);
      await waitFor("the set-aside lines", () => (msgs().filter((m) => / held .*renamed to /.test(m)).length >= 2 ? true : undefined), 5000);
      expect(msgs().filter((m) => m.startsWith(`${p}w:wk1:last held a list`))).toHaveLength(1);
      expect(msgs().filter((m) => m.startsWith(`${p}w:wk1:jobs held the string "x"`))).toHaveLength(1);
      expect(msgs().filter((m) => /broker refused|unreachable/.test(m))).toEqual([]);
    } finally {
      await worker.stop();
      await transport.close();
    }
  });
});
