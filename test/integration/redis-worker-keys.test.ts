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
 * - So are they when the task is settled, dead-lettered, revoked or swept: before, a settle failed
 *   part-way and the worker retried the same batch, which failed again, so one bad key kept every task of
 *   it unacknowledged (and run again once the leases ran out).
 * - A task hash (j:<id>) of another kind affects only its own task at a release (shutdown hand-back), a lease
 *   renewal, a retry, `qworker dead`, `qworker requeue` and `inspect active|scheduled`, and so does a Celery
 *   lease's at celery_settle and celery_retry: before, each failed the whole call (the tasks after it in a
 *   hand-back stayed leased).
 */
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { RecoverReport, Reservation, Transport } from "../../src/broker/transport.ts";
import { runScript } from "../../src/broker/redis/scripts.ts";
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

describe.skipIf(!redisServerAvailable())("a task's own keys of another kind after the send: set aside, and the work goes on", () => {
  const unique = (id: string, key: string) =>
    buildEnqueueItem("demo.add", [1, 2], { id, uniqueKey: key }, { queue: "a", maxPayloadBytes: 1 << 20 });
  /** Replace a unique key with a list: another program's data. */
  const spoilList = async (key: string) => {
    await fx.raw.del(key);
    await fx.raw.rpush(key, "x");
  };

  it("u:<key> at a batch settle: every task of the batch is acknowledged, the key set aside once", async () => {
    const { p, t } = await pair();
    await t.enqueue([unique("a1", "k1"), item("a2"), unique("a3", "k3")]);
    const got = await reserve(t);
    await spoilList(`${p}u:k1`);
    await spoilList(`${p}u:k3`);
    // a1 names its unique key (an 'F' record); a3 does not, so the one kept in its hash is read ('P').
    const items = got.map((r) => ({
      id: r.id,
      token: r.token,
      queue: r.queue,
      outcome: "SUCCESS" as const,
      result: r.id === "a3" ? undefined : `{"r":"${r.id}"}`,
      resultTtlMs: 60_000,
      uniqueKey: r.id === "a1" ? "k1" : undefined,
    }));
    // Before, the call failed with WRONGTYPE at a1, and the worker's retry of the same batch failed again.
    expect(await t.settle(items)).toEqual(["a1", "a2", "a3"]);
    expect(await fx.raw.zcard(`${p}q:a:active`)).toBe(0);
    expect(await fx.raw.smembers(`${p}w:w1:jobs`)).toEqual([]);
    expect(await fx.raw.exists(`${p}j:a1`, `${p}j:a2`, `${p}j:a3`)).toBe(0);
    expect(await fx.raw.get(`${p}r:a2`)).toBe('{"r":"a2"}');
    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(2);
    for (const k of ["k1", "k3"]) {
      const { line, aside } = reportAbout(lines, `${p}u:${k}`);
      expect(line).toContain("held a list, not a string");
      expect(line).toContain("its task has finished, which frees the key: nothing is lost");
      expect(await fx.raw.lrange(aside, 0, -1)).toEqual(["x"]);
    }
    // The key is free: the same work can be sent again.
    expect((await t.enqueue([unique("b1", "k1")]))[0]).toEqual({ id: "b1", duplicate: false });
  });

  it("j:<id> at a batch settle: a still-leased task is settled as its worker reports; one no longer leased is refused", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2"), unique("a3", "k3"), item("a4")]);
    const got = await reserve(t);
    const lease = (id: string) => got.find((r) => r.id === id)!;
    // a4's lease is taken back (released), then its record written over: its worker's settle comes late.
    await t.release([lease("a4")]);
    for (const id of ["a2", "a3", "a4"]) await spoil(`${p}j:${id}`, `not ${id}`);
    const settled = await t.settle([
      { id: "a1", token: lease("a1").token, queue: "a", outcome: "SUCCESS", result: '{"r":"a1"}', resultTtlMs: 60_000 },
      { id: "a2", token: lease("a2").token, queue: "a", outcome: "SUCCESS", result: '{"r":"a2"}', resultTtlMs: 60_000 },
      { id: "a3", token: lease("a3").token, queue: "a", outcome: "FAILURE", result: '{"r":"a3"}', resultTtlMs: 60_000, deadReason: "gave up", deadError: "Error: boom", uniqueKey: "k3" },
      { id: "a4", token: lease("a4").token, queue: "a", outcome: "SUCCESS", result: '{"r":"a4"}', resultTtlMs: 60_000 },
    ]);
    // Before, the whole call failed with WRONGTYPE at a2: not even a1 was acknowledged.
    expect(settled).toEqual(["a1", "a2", "a3"]);
    expect(await fx.raw.zrange(`${p}q:a:active`, 0, -1)).toEqual([]);
    expect(await fx.raw.get(`${p}r:a2`)).toBe('{"r":"a2"}');
    expect(await fx.raw.exists(`${p}j:a2`)).toBe(0);
    // The dead one is kept with what is known, and its unique key freed.
    expect(await fx.raw.zrange(`${p}q:a:dead`, 0, -1)).toEqual(["a3"]);
    expect(await fx.raw.hgetall(`${p}j:a3`)).toMatchObject({ q: "a", dr: "gave up", de: "Error: boom", d: "0" });
    expect(await fx.raw.exists(`${p}u:k3`)).toBe(0);
    expect(await fx.raw.get(`${p}r:a4`)).toBeNull();
    expect(await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).toEqual(["a4"]);

    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(3);
    for (const id of ["a2", "a3"]) {
      const { line, aside } = reportAbout(lines, `${p}j:${id}`);
      expect(line).toContain(`held the string "not ${id}", not a hash`);
      expect(line).toContain(`task ${id}'s record (payload, delivery count) is lost; its outcome was recorded as its worker reported it`);
      expect(await fx.raw.get(aside)).toBe(`not ${id}`);
    }
    expect(reportAbout(lines, `${p}j:a4`).line).toContain("it was no longer leased, so its worker's outcome was not recorded");
    // A second settle of a2 (a retried call) finds no lease: refused, nothing set aside again.
    expect(await t.settle([{ id: "a2", token: lease("a2").token, queue: "a", outcome: "SUCCESS", resultTtlMs: 60_000 }])).toEqual([]);
  });

  it("u:<key> and j:<id> at dead-letter: every task of the call is dead-lettered", async () => {
    const { p, t } = await pair();
    await t.enqueue([unique("a1", "k1"), item("a2"), item("a3")]);
    const got = await reserve(t);
    await spoilList(`${p}u:k1`);
    await spoil(`${p}j:a2`, "not a2");
    // Before, the call failed with WRONGTYPE at a1, the tasks after it never dead-lettered.
    await t.deadLetter(got.map((r) => ({ id: r.id, token: r.token, queue: "a", reason: "undecodable" })));
    expect(await fx.raw.zrange(`${p}q:a:dead`, 0, -1)).toEqual(["a1", "a2", "a3"]);
    expect(await fx.raw.zcard(`${p}q:a:active`)).toBe(0);
    expect(await fx.raw.hgetall(`${p}j:a2`)).toMatchObject({ q: "a", dr: "undecodable", d: "0" });
    expect(await fx.raw.smembers(`${p}w:w1:jobs`)).toEqual(["a2"]);
    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(2);
    const uniq = reportAbout(lines, `${p}u:k1`);
    expect(uniq.line).toContain("its task was dead-lettered, which frees the key: nothing is lost");
    expect(await fx.raw.lrange(uniq.aside, 0, -1)).toEqual(["x"]);
    const job = reportAbout(lines, `${p}j:a2`);
    expect(job.line).toContain("it was dead-lettered all the same");
    expect(await fx.raw.get(job.aside)).toBe("not a2");
    // The stale member of the worker's set is dropped by the next renewal, not renewed.
    expect(await t.extendWorkerLeases("w1", 60_000)).toEqual([]);
    expect(await fx.raw.smembers(`${p}w:w1:jobs`)).toEqual([]);
  });

  it("u:<key> and j:<id> at revoke: every id is revoked and announced, the waiting tasks removed", async () => {
    const { p, t, cli } = await pair();
    await t.enqueue([unique("a1", "k1"), item("a2"), item("a3")]);
    await spoilList(`${p}u:k1`);
    await spoil(`${p}j:a2`, "not a2");
    // Before, the revoke failed with WRONGTYPE at a1: a1 was recorded as revoked but never announced.
    await cli.revoke(["a1", "a2", "a3"], 60_000, false);
    expect((await fx.raw.zrange(`${p}revoked`, 0, -1)).sort()).toEqual(["a1", "a2", "a3"]);
    expect(await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).toEqual(["a2"]);
    expect(await fx.raw.exists(`${p}j:a1`, `${p}j:a3`)).toBe(0);
    expect(JSON.parse((await fx.raw.get(`${p}r:a1`))!)).toMatchObject({ state: "REVOKED" });
    // The task hash is left to the script that meets the task (here the reserve, which dead-letters it).
    expect(await fx.raw.get(`${p}j:a2`)).toBe("not a2");
    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(1);
    const { line, aside } = reportAbout(lines, `${p}u:k1`);
    expect(line).toContain("its task was revoked before it ran, which frees the key: nothing is lost");
    expect(await fx.raw.lrange(aside, 0, -1)).toEqual(["x"]);
  });

  it("u:<key> of a task the sweep dead-letters (delivered too often): the sweep completes", async () => {
    const { p, t } = await pair();
    await t.enqueue([unique("a1", "k1")]);
    await reserve(t, 1);
    await spoilList(`${p}u:k1`);
    await new Promise((r) => setTimeout(r, 20));
    // Before, the sweep failed with WRONGTYPE after dead-lettering a1: the rest of its work (other leases,
    // delayed tasks coming due, the poison reports) waited for the next sweep.
    const rep = await t.recover({ maxDeliveries: 1, heartbeatTtlMs: 10_000, deadMax: 1000, deadTtlMs: 0 });
    expect(rep.deadLettered).toBe(1);
    expect(await fx.raw.zrange(`${p}q:a:dead`, 0, -1)).toEqual(["a1"]);
    const { line, aside } = reportAbout(rep.poisoned ?? [], `${p}u:k1`);
    expect(line).toContain("its task was dead-lettered, which frees the key: nothing is lost");
    expect(await fx.raw.lrange(aside, 0, -1)).toEqual(["x"]);
  });
});

describe.skipIf(!redisServerAvailable())("a task hash of another kind at release, renewal, retry and the dead-letter commands: only its own task is affected", () => {
  const leaseOf = (got: Reservation[], id: string) => got.find((r) => r.id === id)!;
  const refOf = (r: Reservation) => ({ id: r.id, token: r.token, queue: r.queue });

  it("release (a worker's shutdown hand-back): the others go back to ready; a still-leased one is dead-lettered, one no longer leased left alone", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2"), item("a3"), item("a4")]);
    const got = await reserve(t);
    // a4's lease is taken back first, then its record written over: its worker's hand-back comes late.
    await t.release([refOf(leaseOf(got, "a4"))]);
    await spoil(`${p}j:a2`, "not a2");
    await spoil(`${p}j:a4`, "not a4");
    // Before, the call failed with WRONGTYPE at a2: a3 stayed leased until its lease ran out.
    await t.release(got.map(refOf));
    expect((await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).sort()).toEqual(["a1", "a3", "a4"]);
    expect(await fx.raw.zrange(`${p}q:a:active`, 0, -1)).toEqual([]);
    expect(await fx.raw.hget(`${p}j:a3`, "t")).toBeNull();
    // Nothing is left to run of a2: kept in the dead-letter set with the reason, as the sweep would.
    expect(await fx.raw.zrange(`${p}q:a:dead`, 0, -1)).toEqual(["a2"]);
    const a2 = await fx.raw.hgetall(`${p}j:a2`);
    expect(a2).toMatchObject({ q: "a", d: "0" });
    expect(a2.p).toBeUndefined();
    expect(a2.dr).toMatch(new RegExp(`^its record was written over by another program while it was leased \\(kept as ${p}j:a2:poisoned:\\S+\\); nothing was left to run`));

    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(2);
    const lost = reportAbout(lines, `${p}j:a2`);
    expect(lost.line).toContain("could not be handed back; it was dead-lettered");
    expect(await fx.raw.get(lost.aside)).toBe("not a2");
    expect(a2.dr).toContain(lost.aside);
    const late = reportAbout(lines, `${p}j:a4`);
    expect(late.line).toContain("it was no longer leased, so it was not handed back");
    expect(await fx.raw.get(late.aside)).toBe("not a4");
    // The worker's set kept a2 (its name was in the lost record): the next renewal drops it, renewing nothing.
    expect(await t.extendWorkerLeases("w1", 60_000)).toEqual([]);
    expect(await fx.raw.smembers(`${p}w:w1:jobs`)).toEqual([]);
  });

  it("lease renewal (extend): the others are renewed, a still-leased task too and its settle then records it; one no longer leased is lost", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2"), item("a3")]);
    const got = await reserve(t, 10_000);
    await t.release([refOf(leaseOf(got, "a3"))]);
    await spoil(`${p}j:a2`, "not a2");
    await spoil(`${p}j:a3`, "not a3");
    // Before, the call failed with WRONGTYPE: no lease of the worker was renewed.
    expect(await t.extendLeases(got.map(refOf), 600_000)).toEqual(["a3"]);
    const [sec] = await fx.raw.time();
    for (const id of ["a1", "a2"]) expect(Number(await fx.raw.zscore(`${p}q:a:active`, id))).toBeGreaterThan(Number(sec) * 1000 + 500_000);
    // Left in place and not reported: the settle sets it aside and records the worker's outcome.
    expect(await fx.raw.get(`${p}j:a2`)).toBe("not a2");
    expect((await recoverOnce(t)).poisoned ?? []).toEqual([]);
    expect(await settleAll(t, [leaseOf(got, "a1"), leaseOf(got, "a2")])).toEqual(["a1", "a2"]);
    expect(await fx.raw.get(`${p}r:a2`)).toBe('{"r":"a2"}');
    reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}j:a2`);
  });

  it("retry: a still-leased task is retried with the payload its worker sent; one no longer leased is refused", async () => {
    const { p, t } = await pair();
    await t.enqueue([item("a1"), item("a2")]);
    const got = await reserve(t);
    await t.release([refOf(leaseOf(got, "a2"))]);
    await spoil(`${p}j:a1`, "not a1");
    await spoil(`${p}j:a2`, "not a2");
    const retry = (id: string, payload: string) => t.retry({ ...refOf(leaseOf(got, id)), priority: 3, payload, dueAt: 0 });
    // Before, the call failed with WRONGTYPE, and the worker's hand-back of the task (release) failed again.
    expect(await retry("a1", "next attempt")).toBe(true);
    expect(await retry("a2", "late")).toBe(false);
    expect(await fx.raw.zrange(`${p}q:a:active`, 0, -1)).toEqual([]);
    expect(await fx.raw.hgetall(`${p}j:a1`)).toEqual({ q: "a", p: "next attempt", pr: "3", d: "0" });
    const lines = (await recoverOnce(t)).poisoned ?? [];
    expect(lines).toHaveLength(2);
    const retried = reportAbout(lines, `${p}j:a1`);
    expect(retried.line).toContain("it was retried with the payload its worker sent");
    expect(await fx.raw.get(retried.aside)).toBe("not a1");
    expect(reportAbout(lines, `${p}j:a2`).line).toContain("it was no longer leased, so its worker's retry was not scheduled");
    // The next attempt runs (a2, with no record left behind its id, is dead-lettered by the reserve).
    const next = await reserve(t);
    expect(next.map((r) => [r.id, r.payload])).toEqual([["a1", "next attempt"]]);
  });

  /** Three dead tasks, the middle one's record written over. */
  async function deadThree(t: Transport, p: string): Promise<void> {
    await t.enqueue([item("a1"), item("a2"), item("a3")]);
    const got = await reserve(t);
    await t.deadLetter(got.map((r) => ({ ...refOf(r), reason: "gave up" })));
    await spoil(`${p}j:a2`, "not a2");
  }

  it("qworker dead (listDead): every dead task is listed, the bad one with what is wrong", async () => {
    const { p, t, cli } = await pair();
    await deadThree(t, p);
    // Before, the listing failed as a whole with WRONGTYPE.
    const dead = await cli.listDead("a");
    expect(dead.map((d) => d.id).sort()).toEqual(["a1", "a2", "a3"]);
    const bad = dead.find((d) => d.id === "a2")!;
    expect(bad).toMatchObject({ queue: "a", payload: "", deliveries: 0, deadAt: 0 });
    expect(bad.reason).toBe(`its record ${p}j:a2 holds another kind of data (another program's), not a hash: nothing left to run; qworker requeue a2 sets it aside and drops this entry`);
    expect(dead.find((d) => d.id === "a1")!.reason).toBe("gave up");
    // A read-only command: the key is left where it is.
    expect(await fx.raw.get(`${p}j:a2`)).toBe("not a2");
  });

  it("qworker requeue (requeue_dead): the others are requeued, the bad one set aside and its entry dropped", async () => {
    const { p, t, cli } = await pair();
    await deadThree(t, p);
    // Before, the command failed with WRONGTYPE at a2, after a1 was requeued.
    expect(await cli.requeueDead("all", "a")).toBe(2);
    expect((await fx.raw.zrange(`${p}q:a:ready`, 0, -1)).sort()).toEqual(["a1", "a3"]);
    expect(await fx.raw.zrange(`${p}q:a:dead`, 0, -1)).toEqual([]);
    expect(await fx.raw.exists(`${p}j:a2`)).toBe(0);
    const { line, aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}j:a2`);
    expect(line).toContain("so there was nothing to requeue; its dead-letter entry was dropped");
    expect(await fx.raw.get(aside)).toBe("not a2");
  });

  it("inspect active / scheduled (listActive, listScheduled): the others are listed, the bad one left out as a task with no record", async () => {
    const { p, t, cli } = await pair();
    await t.enqueue([item("a1"), item("a2"), item("d1", { countdown: 600 }), item("d2", { countdown: 600 })]);
    await reserve(t);
    await spoil(`${p}j:a2`, "not a2");
    await spoil(`${p}j:d2`, "not d2");
    // Before, each listing failed as a whole with WRONGTYPE.
    expect((await cli.listActive()).map((a) => a.id)).toEqual(["a1"]);
    expect((await cli.listScheduled()).map((s) => s.id)).toEqual(["d1"]);
    expect(await fx.raw.get(`${p}j:a2`)).toBe("not a2");
  });

  describe("Celery leases (celery_settle, celery_retry)", () => {
    const Q = "celery:default";
    /** A leased Celery message as celery_claim.lua leaves it (the fields these scripts read). */
    async function celeryLease(p: string, id: string, leased = true): Promise<string> {
      const token = `tok-${id}`;
      await fx.raw.hset(`${p}j:${id}`, "t", token, "w", "w1", "q", Q, "p", "envelope");
      if (leased) await fx.raw.zadd(`${p}q:${Q}:active`, Date.now() + 30_000, id);
      await fx.raw.sadd(`${p}w:w1:jobs`, id);
      return token;
    }
    const meta = (id: string) => JSON.stringify({ status: "SUCCESS", result: id, task_id: id });

    it("celery_settle: every message of the call is settled, a bad one as its worker reports while still leased", async () => {
      const { p, t } = await pair();
      const ids = ["celery:m1", "celery:m2", "celery:m3", "celery:m4"];
      const tokens = await Promise.all(ids.map((id) => celeryLease(p, id, id !== "celery:m3")));
      for (const id of ids.slice(1)) await spoil(`${p}j:${id}`, `not ${id}`);
      const args = ids.flatMap((id, i) => [id, tokens[i]!, Q, `celery-task-meta-${p}${id}`, meta(id), 60, id === "celery:m4" ? "undecodable" : ""]);
      // Before, the call failed with WRONGTYPE at m2, after m1 was settled.
      expect(await runScript(fx.raw, "celery_settle", [p, ...args])).toEqual(["celery:m1", "celery:m2", "celery:m4"]);
      for (const id of ["celery:m1", "celery:m2", "celery:m4"]) expect(await fx.raw.get(`celery-task-meta-${p}${id}`)).toBe(meta(id));
      expect(await fx.raw.get(`celery-task-meta-${p}celery:m3`)).toBeNull();
      expect(await fx.raw.zrange(`${p}q:${Q}:active`, 0, -1)).toEqual([]);
      expect(await fx.raw.zrange(`${p}q:${Q}:dead`, 0, -1)).toEqual(["celery:m4"]);
      expect(await fx.raw.hgetall(`${p}j:celery:m4`)).toMatchObject({ q: Q, d: "0", dr: "undecodable" });
      expect(await fx.raw.exists(`${p}j:celery:m2`)).toBe(0);
      const lines = (await recoverOnce(t)).poisoned ?? [];
      expect(lines).toHaveLength(3);
      for (const id of ["celery:m2", "celery:m4"]) {
        const { line, aside } = reportAbout(lines, `${p}j:${id}`);
        expect(line).toContain("its outcome was recorded as its worker reported it");
        expect(await fx.raw.get(aside)).toBe(`not ${id}`);
      }
      expect(reportAbout(lines, `${p}j:celery:m3`).line).toContain("it was no longer leased, so its worker's outcome was not recorded");
    });

    it("celery_retry: a still-leased message is retried with the envelope its worker sent; one no longer leased is refused", async () => {
      const { p, t } = await pair();
      const t1 = await celeryLease(p, "celery:r1");
      const t2 = await celeryLease(p, "celery:r2", false);
      await spoil(`${p}j:celery:r1`, "not r1");
      await spoil(`${p}j:celery:r2`, "not r2");
      const list = `${p}kombu-list`;
      const retry = (id: string, token: string) => runScript(fx.raw, "celery_retry", [p, id, token, Q, list, `retry of ${id}`, `celery-task-meta-${p}${id}`, meta(id), 0]);
      // Before, each call failed with WRONGTYPE.
      expect(await retry("celery:r1", t1)).toBe(1);
      expect(await retry("celery:r2", t2)).toBe(0);
      expect(await fx.raw.lrange(list, 0, -1)).toEqual(["retry of celery:r1"]);
      expect(await fx.raw.zrange(`${p}q:${Q}:active`, 0, -1)).toEqual([]);
      const lines = (await recoverOnce(t)).poisoned ?? [];
      expect(lines).toHaveLength(2);
      expect(reportAbout(lines, `${p}j:celery:r1`).line).toContain("it was retried with the envelope its worker sent");
      expect(reportAbout(lines, `${p}j:celery:r2`).line).toContain("it was no longer leased, so its worker's retry was not sent");
    });
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
